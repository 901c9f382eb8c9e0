// The Resonate page: choose a recording, set a few knobs, start, and listen to
// the restored audio while the server makes it; A/B against the original at the
// same position, solo/mute streamed stems, download the final files.
// Talks to the server only through the documented protocol (gateway.js), plus
// the documented GET /presets for showing preset values.

import { GatewayError, GatewaySession, gatewayUrl } from "./gateway.js";
import * as msgpack from "./msgpack.js";
import { Overview, drawSpectrograms, drawWaveforms } from "./overview.js";
import { StreamPlayer, f32leToFloat32 } from "./player.js";
import * as S from "./settings.js";

const $ = (id) => document.getElementById(id);
const SAMPLE_RATE = 44100; // the engine's output rate (audio.sample_rate)
const ACK_WINDOW = 32; // audio messages in flight ahead of our acks
const ACCEPTED = ["mp3", "m4a", "aac", "mp4", "wav", "flac", "ogg", "oga", "opus"];
const MAX_LOCAL_DECODE_BYTES = 1.2e9; // estimated decoded size above which A/B is off
const RECONNECT_DELAYS_MS = [250, 500, 1000, 2000, 4000, 4000, 8000, 8000];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const token = new URLSearchParams(location.search).get("token");

const app = {
  state: S.loadState(),
  catalogue: null,
  file: null,
  session: null,
  job: null,
  player: new StreamPlayer({ sampleRate: SAMPLE_RATE }),
  before: null, // Overview of the original
  after: null, // Overview of the restored stream
  analysis: null,
  lastError: null,
  connecting: null, // the connect in flight (a Promise), shared by whoever needs the connection
  reconnects: 0,
  notes: [],
  downloads: {},
  reference: null, // the optional reference recording (a File)
};

// ---- messages for people -------------------------------------------------------
const INPUT_CODES = ["not_audio", "empty_audio", "truncated_audio", "unsupported_audio", "bad_input", "non_finite_samples"];

function titleFor(code) {
  if (INPUT_CODES.includes(code)) return "This file could not be read as audio";
  if (code === "server_unreachable" || code === "connection_lost") return "Server unreachable";
  if (code === "bad_settings") return "Settings rejected";
  if (code === "upload_too_large") return "File too large";
  if (code === "bad_reference") return "The reference recording could not be used";
  if (code === "too_many_jobs") return "Server busy";
  return "Processing failed";
}

function showError(code, message, title = null) {
  app.lastError = { code, message };
  $("error-title").textContent = `${title || titleFor(code)}:`;
  $("error-text").textContent = `${message} [${code}]`;
  $("error").hidden = false;
}

function clearError() {
  app.lastError = null;
  $("error").hidden = true;
}

function setConn(state, text) {
  $("conn").dataset.state = state;
  $("conn").textContent = `server: ${text}`;
}

const fmtTime = (s) => {
  if (!Number.isFinite(s)) return "–";
  const m = Math.floor(s / 60);
  return `${m}:${(s - m * 60).toFixed(1).padStart(4, "0")}`;
};
const fmtNum = (v, digits, unit) => (v === null || v === undefined || !Number.isFinite(v) ? "–" : `${v.toFixed(digits)} ${unit}`);

// ---- settings UI ---------------------------------------------------------------
function buildStemRows() {
  const body = $("stem-rows");
  body.innerHTML = "";
  for (const s of S.STEMS) {
    const tr = document.createElement("tr");
    const heads = { nr: "Noise reduction", eq: "EQ intensity", gain: "Level (dB)" }; // labels on a phone (style.css)
    tr.innerHTML = `<td>${s}</td>` + ["nr", "eq", "gain"].map((k) =>
      `<td data-label="${heads[k]}"><input type="range" id="${k}-${s}" aria-label="${s} ${heads[k]}">` +
      `<output id="${k}-${s}-out"></output></td>`).join("");
    body.appendChild(tr);
  }
  for (const [id, ctl] of Object.entries(S.CONTROLS)) {
    const el = $(id);
    el.min = ctl.min; el.max = ctl.max; el.step = ctl.step;
    el.addEventListener("input", () => {
      S.setPath(app.state.overrides, ctl.path, Number(el.value));
      if (id === "high-band" || id === "sub-bass") $(`${id}-on`).checked = Number(el.value) > 0;
      saveAndShow();
    });
  }
  for (const id of ["high-band", "sub-bass"]) {
    $(`${id}-on`).addEventListener("change", (ev) => {
      const ctl = S.CONTROLS[id];
      const presetValue = S.effectiveValue({ ...app.state, overrides: {} }, app.catalogue, id);
      const value = ev.target.checked ? (Number($(id).value) || presetValue || ctl.fallback || 1) : 0;
      S.setPath(app.state.overrides, ctl.path, value);
      saveAndShow();
    });
  }
}

function fillPresets() {
  const names = app.catalogue ? Object.keys(app.catalogue.presets) : ["conservative", "balanced", "aggressive"];
  const sel = $("preset");
  sel.innerHTML = names.map((n) => `<option value="${n}">${n}</option>`).join("");
  if (!app.state.preset || !names.includes(app.state.preset)) {
    app.state.preset = (app.catalogue && app.catalogue.default) || (names.includes("balanced") ? "balanced" : names[0]);
  }
}

function showSettings() {
  const st = app.state;
  $("preset").value = st.preset;
  $("quality").value = st.quality || "";
  for (const [id, ctl] of Object.entries(S.CONTROLS)) {
    const v = S.effectiveValue(st, app.catalogue, id);
    $(id).value = v;
    const out = $(`${id}-out`);
    out.textContent = ctl.unit ? `${v > 0 ? "+" : ""}${v.toFixed(1)}` : v.toFixed(2);
    const overridden = typeof S.getPath(st.overrides, ctl.path) === "number";
    out.style.color = overridden ? "var(--accent)" : "";
  }
  $("high-band-on").checked = S.effectiveValue(st, app.catalogue, "high-band") > 0;
  $("sub-bass-on").checked = S.effectiveValue(st, app.catalogue, "sub-bass") > 0;
  $("dereverb").value = S.getPath(st.overrides, "restore.dereverb") || "";
  const mode = S.getPath(st.overrides, "generate.mode") || "";
  $("mode").value = mode;
  $("generate-warning").hidden = !mode; // the warning before anything is generated
  $("blend-pair").hidden = mode !== "both";
  const blend = S.getPath(st.overrides, "generate.blend");
  $("blend").value = typeof blend === "number" ? blend : 0.5;
  $("blend-out").textContent = Number($("blend").value).toFixed(2);
  $("out-format").value = st.output.format;
  $("out-depth").value = String(st.output.bit_depth);
  $("out-depth").querySelector('option[value="32"]').disabled = st.output.format !== "wav";
  if (st.output.format !== "wav" && Number(st.output.bit_depth) === 32) $("out-depth").value = "24";
  $("depth-label").hidden = st.output.format === "mp3";
  $("send-stems").checked = !!st.sendStems;
}

function saveAndShow() {
  S.saveState(app.state);
  showSettings();
}

function wireSettings() {
  $("preset").addEventListener("change", (ev) => { app.state.preset = ev.target.value; app.state.overrides = {}; saveAndShow(); });
  $("quality").addEventListener("change", (ev) => { app.state.quality = ev.target.value || null; saveAndShow(); });
  $("reset").addEventListener("click", () => { app.state.overrides = {}; app.state.quality = null; saveAndShow(); });
  $("dereverb").addEventListener("change", (ev) => {
    if (ev.target.value) S.setPath(app.state.overrides, "restore.dereverb", ev.target.value);
    else S.deletePath(app.state.overrides, "restore.dereverb");
    saveAndShow();
  });
  $("mode").addEventListener("change", (ev) => {
    if (ev.target.value) S.setPath(app.state.overrides, "generate.mode", ev.target.value);
    else { S.deletePath(app.state.overrides, "generate.mode"); S.deletePath(app.state.overrides, "generate.blend"); }
    saveAndShow();
  });
  $("blend").addEventListener("input", (ev) => {
    S.setPath(app.state.overrides, "generate.blend", Number(ev.target.value));
    saveAndShow();
  });
  $("out-format").addEventListener("change", (ev) => { app.state.output.format = ev.target.value; saveAndShow(); });
  $("out-depth").addEventListener("change", (ev) => { app.state.output.bit_depth = Number(ev.target.value); saveAndShow(); });
  $("send-stems").addEventListener("change", (ev) => { app.state.sendStems = ev.target.checked; saveAndShow(); });
}

async function loadCatalogue() {
  try {
    const r = await fetch("presets", { cache: "no-store" });
    if (r.ok) app.catalogue = await r.json();
  } catch (e) { /* older server: names only, values from the fallback */ }
  fillPresets();
  showSettings();
}

// ---- the recording -------------------------------------------------------------
function knownDuration() {
  if (app.player.original) return app.player.original.duration;
  if (app.analysis && Number.isFinite(app.analysis.durationS)) return app.analysis.durationS;
  return null;
}

function showAnalysis(metrics, durationS, partialS) {
  app.analysis = { metrics, durationS, partial: partialS !== null };
  const m = metrics || {};
  $("m-duration").textContent = fmtTime(durationS ?? m.duration_s);
  $("m-snr").textContent = fmtNum(m.snr_db, 1, "dB");
  $("m-lufs").textContent = fmtNum(m.integrated_lufs, 1, "LUFS");
  const lo = m.bandwidth_low_hz, hi = m.bandwidth_high_hz;
  $("m-band").textContent = Number.isFinite(lo) && Number.isFinite(hi) ? `${Math.round(lo)}–${(hi / 1000).toFixed(1)}k Hz` : "–";
  $("analysis-note").textContent = partialS !== null
    ? `Measured by the server on the first ${partialS.toFixed(0)} s; the whole recording follows when the job is done.`
    : "Measured by the server on the whole recording.";
}

function estimateDecodedBytes(file) {
  const ext = file.name.split(".").pop().toLowerCase();
  const factor = ext === "wav" ? 2 : ext === "flac" ? 4 : 12; // float32 stereo vs the file
  return file.size * factor;
}

async function chooseFile(file) {
  clearError();
  const ext = file.name.includes(".") ? file.name.split(".").pop().toLowerCase() : "";
  if (!ACCEPTED.includes(ext) && !(file.type || "").startsWith("audio/")) {
    showError("bad_input", `${file.name} is not a recording this page accepts: choose an mp3, m4a, wav, flac or ogg file.`,
      "Unsupported file");
    return;
  }
  app.file = file;
  app.analysis = null;
  for (const id of ["m-duration", "m-snr", "m-lufs", "m-band"]) $(id).textContent = "–";
  $("analysis-note").textContent = "";
  $("drop-text").textContent = `${file.name} (${(file.size / 1e6).toFixed(1)} MB) — drop or click to choose another`;
  $("start").disabled = app.job !== null && ["uploading", "running"].includes(app.job.state);
  $("job-status").textContent = "Ready: press Start.";
  app.player.setOriginal(null);
  app.before = null;
  app.original = { state: "decoding" };
  $("file-note").textContent = "Decoding in the browser for A/B comparison…";
  if (estimateDecodedBytes(file) > MAX_LOCAL_DECODE_BYTES) {
    app.original = { state: "too_large" };
    $("file-note").textContent = "This recording is too long to hold in the browser, so A/B comparison is off. Restoring it works as usual.";
    return;
  }
  try {
    const bytes = await file.arrayBuffer();
    const buf = await app.player.context().decodeAudioData(bytes);
    if (file !== app.file) return; // another file was chosen meanwhile
    app.player.setOriginal(buf);
    app.original = { state: "decoded", duration: buf.duration };
    const ov = new Overview(SAMPLE_RATE, { durationS: buf.duration });
    const chans = [];
    for (let c = 0; c < buf.numberOfChannels; c++) chans.push(buf.getChannelData(c));
    ov.pushPlanar(chans);
    app.before = ov;
    $("m-duration").textContent = fmtTime(buf.duration);
    $("file-note").textContent = `Decoded in the browser: ${buf.numberOfChannels} channel(s), ${fmtTime(buf.duration)}. A/B comparison is on.`;
  } catch (e) {
    if (file !== app.file) return;
    app.original = { state: "undecodable" };
    $("file-note").textContent = "Your browser cannot decode this file, so A/B comparison is off; the server will try to read it.";
  }
}

function wireFileInput() {
  const drop = $("drop");
  $("file").addEventListener("change", (ev) => { if (ev.target.files.length) chooseFile(ev.target.files[0]); });
  $("reference").addEventListener("change", (ev) => {
    app.reference = ev.target.files.length ? ev.target.files[0] : null;
    $("reference-note").textContent = app.reference
      ? `Reference: ${app.reference.name} (${(app.reference.size / 1e6).toFixed(1)} MB); the result is matched to it.`
      : "A studio version of the song, or a record you like: the result is matched to its tonal balance, width and loudness.";
  });
  drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    drop.classList.remove("over");
    if (ev.dataTransfer.files.length) chooseFile(ev.dataTransfer.files[0]);
  });
}

// ---- connection -------------------------------------------------------------------
async function ensureSession() {
  if (!app.session) {
    app.session = new GatewaySession(gatewayUrl(location, token), {
      token, ackWindow: ACK_WINDOW,
      handlers: { audio: onAudio, progress: onProgress, info: onInfo, jobDone: onJobDone, jobError: onJobError,
        notice: (err) => showError(err.code, err.message) },
    });
    app.session.onDrop = onDrop;
  }
  if (!app.session.connected) {
    if (!app.connecting) { // one attempt at a time: the page-load connect and Start share it
      app.connecting = (async () => {
        setConn("connecting", "connecting…");
        try {
          await app.session.connect();
        } catch (err) {
          setConn("lost", "unreachable");
          throw new GatewayError("server_unreachable",
            `Cannot reach the Resonate server at ${location.host}: is \`resonate serve\` still running? (${err.message})`);
        }
        setConn("connected", "connected");
      })().finally(() => { app.connecting = null; });
    }
    await app.connecting;
  }
  return app.session;
}

// ---- server status (shown from page load, refreshed while idle) ---------------------------
const STATUS_EVERY_MS = 10000;

function jobActive() {
  return !!app.job && ["connecting", "uploading", "running"].includes(app.job.state);
}

/** Connect (when not connected) and show what the server says about itself: name, jobs running. */
async function refreshServerStatus() {
  if ($("conn").dataset.state === "reconnecting" || app.connecting) return; // a connect is under way
  if (!app.session || !app.session.connected) {
    if (jobActive()) return;
    try { await ensureSession(); } catch (err) { return; } // shown as "unreachable"
  }
  try {
    const r = await fetch("health", { cache: "no-store" });
    if (!r.ok) return;
    const h = await r.json();
    if (!app.session || !app.session.connected) return;
    const busy = Number.isFinite(h.max_jobs) ? `${h.jobs_running} of ${h.max_jobs} jobs running` : "";
    const name = (app.session.welcome && app.session.welcome.server) || h.server || "";
    setConn("connected", `connected${name ? ` (${name})` : ""}${busy ? `, ${busy}` : ""}${h.status === "closing" ? ", shutting down" : ""}`);
  } catch (err) { /* the websocket state stays shown */ }
}

async function onDrop() {
  const job = app.job;
  const following = job && job.state === "running";
  const downloading = Object.keys(app.downloads).length > 0;
  if (job && job.state === "uploading") {
    setConn("lost", "connection lost");
    failJob(new GatewayError("connection_lost",
      "The connection dropped during the upload, and uploads cannot resume. Press Start to send the file again."));
    return;
  }
  if (!following && !downloading) { setConn("lost", "disconnected"); return; }
  setConn("reconnecting", "reconnecting…");
  for (const delay of RECONNECT_DELAYS_MS) {
    await sleep(delay);
    try {
      await app.session.connect();
      app.reconnects += 1;
      if (app.job === job && job.state === "running") await app.session.resume(job.id);
      setConn("connected", "connected (resumed)");
      return;
    } catch (err) {
      if (err.code === "unknown_job") {
        failJob(new GatewayError("unknown_job", "The server no longer knows this job (it restarted or the job expired). Start again."));
        setConn("connected", "connected");
        return;
      }
    }
  }
  setConn("lost", "unreachable");
  failJob(new GatewayError("server_unreachable",
    `Lost the connection to the Resonate server at ${location.host} and could not get it back. Is it still running?`));
}

// ---- a job -------------------------------------------------------------------------
function setJobState(state, text) {
  if (!app.job) return;
  app.job.state = state;
  $("job-status").textContent = text;
  const active = ["connecting", "uploading", "running"].includes(state);
  $("start").disabled = active || !app.file;
  $("cancel").hidden = !active;
}

function setProgress(stage, done, total, unit = "s") {
  const row = document.querySelector(`.stage[data-stage="${stage}"]`);
  if (!row) return;
  const frac = total ? Math.min(1, done / total) : 0;
  row.querySelector("progress").value = frac;
  row.querySelector(".pct").textContent = total ? `${Math.round(frac * 100)} %` : unit === "s" ? `${done.toFixed(1)} s` : "";
}

function resetProgress() {
  for (const row of document.querySelectorAll(".stage")) {
    row.querySelector("progress").value = 0;
    row.querySelector(".pct").textContent = "";
  }
}

async function start() {
  if (!app.file) return;
  clearError();
  resetProgress();
  $("download-section").hidden = true;
  $("downloads").innerHTML = "";
  $("after-note").textContent = "";
  app.downloads = {};
  const player = app.player;
  player.reset();
  player.context().resume(); // inside the click: the browser lets audio start
  app.after = new Overview(SAMPLE_RATE, { durationS: knownDuration() });
  app.job = { id: null, state: "connecting", lastAcked: -1, progress: {}, outputs: null,
    report: null, startedAt: performance.now(), firstAudioAt: null, doneAt: null, blocks: 0, stems: false };
  const job = app.job;
  setJobState("connecting", "Connecting…");
  try {
    const session = await ensureSession();
    const refFile = app.reference;
    if (refFile && !(session.features || []).includes("reference")) {
      throw Object.assign(new Error("this server does not do reference matching; remove the reference or update the server"),
        { code: "bad_reference" });
    }
    job.id = await session.startJob({
      settings: S.jobSettings(app.state, app.catalogue),
      input: { kind: "upload", format: "encoded", filename: app.file.name, size: app.file.size },
      options: S.jobOptions(app.state),
      reference: refFile ? { kind: "upload", format: "encoded", filename: refFile.name, size: refFile.size } : null,
    });
    setJobState("uploading", "Uploading…");
    const total = app.file.size + (refFile ? refFile.size : 0);
    const shown = (sent) => { job.progress.upload = { done: sent, total }; setProgress("upload", sent, total, "B"); };
    if (refFile) await session.upload(job.id, refFile, (sent) => shown(sent), undefined, "reference");
    const before = refFile ? refFile.size : 0;
    await session.upload(job.id, app.file, (sent) => shown(before + sent));
    if (job.state === "uploading") setJobState("running", "Restoring… playback starts after 2 s of audio.");
  } catch (err) {
    if (app.job === job && !["failed", "done", "cancelled"].includes(job.state)) failJob(err);
  }
}

function failJob(err) {
  const job = app.job;
  if (!job) return;
  const code = err.code || "internal_error";
  if (code === "cancelled") {
    setJobState("cancelled", "Cancelled.");
  } else {
    setJobState("failed", "Failed.");
    showError(code, err.message || String(err));
  }
  app.player.endOfStream();
}

function maybeAck() {
  const job = app.job;
  const last = job && job.id ? app.session.nextSeq(job.id) - 1 : -1;
  if (!job || !job.id || last <= job.lastAcked) return;
  // hold acks (so the server holds the stream) while plenty waits ahead of the play head
  if (app.player.aheadSeconds() > app.player.aheadS && app.player.state !== "idle") return;
  try { app.session.ack(job.id, last); job.lastAcked = last; } catch (e) { /* reconnecting */ }
}

function onAudio(m) {
  const job = app.job;
  if (!job || m.job_id !== job.id) return;
  // seq and offset order is checked by the session (gateway.js)
  const data = f32leToFloat32(m.data);
  let stems = null;
  if (m.stems) {
    stems = {};
    for (const [name, bytes] of Object.entries(m.stems)) stems[name] = f32leToFloat32(bytes);
    if (!job.stems) { job.stems = true; buildStemControls(Object.keys(stems)); }
  }
  if (job.firstAudioAt === null) {
    job.firstAudioAt = performance.now();
    $("job-status").textContent = `Restoring… first audio after ${((job.firstAudioAt - job.startedAt) / 1000).toFixed(1)} s.`;
  }
  app.player.addBlock(m.offset, m.frames, m.channels, data, stems);
  app.after.pushInterleaved(data, m.channels);
  job.blocks += 1;
  $("play").disabled = false;
  maybeAck();
}

function onProgress(m) {
  const job = app.job;
  if (!job || m.job_id !== job.id) return;
  job.progress[m.stage] = { done: m.done, total: m.total };
  setProgress(m.stage, m.done, m.total);
}

function onInfo(m) {
  const job = app.job;
  if (!job || m.job_id !== job.id) return;
  const d = m.data || {};
  if (d.kind === "input_analysis") {
    showAnalysis(d.metrics, d.duration_s, d.partial ? d.analysed_s : null);
    if (app.after && !app.after.frames && !app.player.original && Number.isFinite(d.duration_s)) {
      app.after = new Overview(SAMPLE_RATE, { durationS: d.duration_s });
    }
  } else if (d.kind === "provenance") {
    showProvenance(d.provenance || {});
  } else {
    app.notes.push(m.message);
    if (d.kind === "separator" || /^separator:/.test(m.message)) $("after-note").textContent = m.message;
  }
}

// what made the output (job_done.provenance / info kind "provenance"): the B button says it
function showProvenance(p) {
  if (!p || !p.kind) return;
  const b = $("ab-restored");
  if (b) {
    b.textContent = `B: ${p.label || p.kind}`;
    b.title = p.summary || "";
  }
  if (p.generative) app.notes.push(`provenance: ${p.summary}`);
}

function onJobDone(m) {
  const job = app.job;
  if (!job || m.job_id !== job.id) return;
  job.doneAt = performance.now();
  job.outputs = m.outputs || {};
  job.report = m.report || {};
  showProvenance(m.provenance);
  setJobState("done", `Done in ${((job.doneAt - job.startedAt) / 1000).toFixed(1)} s. The final files are ready below.`);
  const before = job.report.metrics_before;
  if (before) showAnalysis(before, before.duration_s, null);
  const after = job.report.metrics_after || {};
  const sep = (job.report.separation || {}).separator;
  $("after-note").textContent = `After: SNR ${fmtNum(after.snr_db, 1, "dB")}, ${fmtNum(after.integrated_lufs, 1, "LUFS")}, ` +
    `band ${Math.round(after.bandwidth_low_hz || 0)}–${((after.bandwidth_high_hz || 0) / 1000).toFixed(1)}k Hz` +
    (sep ? `; separator: ${sep}` : "") + ". The download has an exact loudness pass; the stream was a preview." +
    (m.provenance && m.provenance.generative ? ` Made by: ${m.provenance.summary}.` : "");
  app.player.endOfStream();
  maybeAck();
  showDownloads(job.outputs);
}

function onJobError(err) {
  if (!app.job || err.jobId !== app.job.id) return;
  failJob(err);
}

// ---- downloads -----------------------------------------------------------------------
function labelFor(kind, path) {
  const ext = (path.split(".").pop() || "").toUpperCase();
  if (kind === "master") return `Restored master (${ext})`;
  if (kind.startsWith("stem_")) return `${kind.slice(5)} stem (${ext})`;
  if (kind === "report") return "Report (JSON)";
  return `${kind} (${ext})`;
}

function showDownloads(outputs) {
  const box = $("downloads");
  box.innerHTML = "";
  const kinds = Object.keys(outputs).sort((a, b) => (a === "master" ? -1 : b === "master" ? 1 : a.localeCompare(b)));
  for (const kind of kinds) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = kind === "master" ? "primary" : "secondary";
    b.dataset.kind = kind;
    b.textContent = labelFor(kind, outputs[kind]);
    b.addEventListener("click", () => downloadKind(kind).catch(() => {}));
    box.appendChild(b);
  }
  $("download-section").hidden = false;
}

async function downloadKind(kind) {
  const job = app.job;
  if (!job || job.state !== "done") throw new Error("no finished job");
  const note = $("download-note");
  app.downloads[kind] = true;
  try {
    const session = await ensureSession();
    const res = await session.download(job.id, kind, (got, size) => {
      note.textContent = `Downloading ${kind}: ${(got / 1e6).toFixed(1)} / ${(size / 1e6).toFixed(1)} MB`;
    });
    const url = URL.createObjectURL(res.blob);
    const a = document.createElement("a");
    a.href = url;
    a.download = res.filename;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    note.textContent = `Saved ${res.filename} (${(res.size / 1e6).toFixed(1)} MB).`;
    return { filename: res.filename, size: res.size, mime: res.mime, resumedFrom: res.resumedFrom };
  } catch (err) {
    showError(err.code || "internal_error", `Download of ${kind} failed: ${err.message}`, "Download failed");
    throw err;
  } finally {
    delete app.downloads[kind];
  }
}

// ---- listening -------------------------------------------------------------------------
function buildStemControls(names) {
  const box = $("stem-controls");
  box.innerHTML = "<span class='note'>Stems:</span>";
  for (const name of names) {
    const span = document.createElement("span");
    span.className = "stem-toggle";
    span.innerHTML = `${name} <button type="button" data-stem="${name}" data-act="solo" title="solo">S</button>` +
      `<button type="button" data-stem="${name}" data-act="mute" title="mute">M</button>`;
    box.appendChild(span);
  }
  box.querySelectorAll("button").forEach((b) => b.addEventListener("click", () => {
    const on = !b.classList.contains("on");
    b.classList.toggle("on", on);
    app.player.setStem(b.dataset.stem, { [b.dataset.act]: on });
  }));
  box.hidden = false;
}

function setAB(which) {
  app.player.setAB(which);
  for (const b of document.querySelectorAll(".ab button")) b.classList.toggle("active", b.dataset.ab === which);
  if (which === "original" && !app.player.original) {
    $("buffer-note").textContent = "The original could not be decoded in this browser: you hear silence on A.";
  }
}

function wireTransport() {
  $("play").addEventListener("click", () => {
    const p = app.player;
    if (p.state === "playing" || p.state === "buffering" || p.state === "waiting") p.pause(); else p.play();
  });
  for (const b of document.querySelectorAll(".ab button")) b.addEventListener("click", () => setAB(b.dataset.ab));
  $("waveform").addEventListener("click", (ev) => {
    const span = spanS();
    if (!span) return;
    const r = ev.target.getBoundingClientRect();
    app.player.seek(((ev.clientX - r.left) / r.width) * span);
  });
  document.addEventListener("keydown", (ev) => {
    if (ev.target.tagName === "INPUT" || ev.target.tagName === "SELECT") return;
    if (ev.key === "a" || ev.key === "A") setAB("original");
    else if (ev.key === "b" || ev.key === "B") setAB("restored");
    else if (ev.key === " ") { ev.preventDefault(); $("play").click(); }
  });
  $("start").addEventListener("click", start);
  $("cancel").addEventListener("click", () => { if (app.job && app.job.id && app.session) app.session.cancel(app.job.id); });
  $("error-close").addEventListener("click", clearError);
}

function spanS() {
  return knownDuration() || Math.max(app.before ? app.before.durationS : 0, app.after ? app.after.durationS : 0) || null;
}

let lastDrawn = "";
function frame() {
  const p = app.player;
  const pos = p.position();
  $("clock").textContent = `${fmtTime(pos)} / ${fmtTime(Math.max(knownDuration() || 0, p.durationS))}`; // the whole recording
  const labels = { playing: "Pause", buffering: "Pause", waiting: "Pause" };
  $("play").textContent = labels[p.state] || "Play";
  $("buffer-note").textContent = p.state === "buffering" ? "Buffering: waiting for more restored audio…"
    : p.state === "waiting" ? "Playback starts after 2 s of restored audio…"
      : p.aheadSeconds() > p.aheadS ? "Stream paced: 10 minutes wait ahead of the play head." : "";
  const key = `${app.before ? app.before.version : 0}/${app.after ? app.after.version : 0}/${pos.toFixed(2)}`;
  if (key !== lastDrawn) {
    lastDrawn = key;
    const span = spanS();
    drawWaveforms($("waveform"), app.before, app.after, span, pos);
    drawSpectrograms($("spectrogram"), app.before, app.after, span, pos);
  }
  maybeAck();
}

// ---- test hooks (stable names; the browser tests read these) ---------------------------------
window.resonate = {
  get jobState() { return app.job ? app.job.state : "idle"; },
  get jobId() { return app.job ? app.job.id : null; },
  get progress() { return app.job ? JSON.parse(JSON.stringify(app.job.progress)) : {}; },
  get scheduledBlocks() { return app.player.scheduledBlocks; },
  get receivedBlocks() { return app.job ? app.job.blocks : 0; },
  get receivedSeconds() { return app.player.durationS; },
  playbackPosition: () => app.player.position(),
  audioClock: () => (app.player.ctx ? app.player.ctx.currentTime : null),
  get playerState() { return app.player.state; },
  get abState() { return app.player.abState; },
  setAB,
  gains: () => app.player.gains(),
  get originalDecoded() { return !!app.player.original; },
  get lastError() { return app.lastError; },
  get analysis() { return app.analysis; },
  get reconnects() { return app.reconnects; },
  get outputs() { return app.job ? app.job.outputs : null; },
  get timeline() {
    const j = app.job;
    const rel = (t) => (j && t !== null && t !== undefined ? (t - j.startedAt) / 1000 : null);
    return j ? { firstAudioS: rel(j.firstAudioAt), playbackStartedS: rel(app.player.playbackStartedAt), jobDoneS: rel(j.doneAt) } : {};
  },
  get stemNames() { return app.player.stemNames.slice(); },
  get settings() { return JSON.parse(JSON.stringify(app.state)); },
  get jobSettings() { return S.jobSettings(app.state, app.catalogue); },
  download: (kind) => downloadKind(kind),
  dropConnection: () => app.session && app.session.dropForTest(),
  msgpack,
};

// ---- start-up ----------------------------------------------------------------------------------
buildStemRows();
wireSettings();
wireFileInput();
wireTransport();
fillPresets();
showSettings();
loadCatalogue();
refreshServerStatus(); // connect on load, not on Start: the status is there before anything is chosen
setInterval(refreshServerStatus, STATUS_EVERY_MS);
setInterval(frame, 200);
