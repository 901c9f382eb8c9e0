// The Resonate websocket protocol (docs/protocol.md) for the browser: one
// connection, hello/welcome, uploads with back-pressure, resume after a
// dropped connection, and `fetch` downloads assembled into a Blob. It keeps
// the same session rules as resonate_protocol's ClientSession: hello first
// and nothing before welcome; every job's audio in seq order from 0 with
// contiguous offsets (a duplicate after a resume is dropped, a gap ends the
// job with `bad_sequence`); resume from the next seq not received; acks only
// with an ack window; download pieces contiguous. Nothing here knows about the page.

import { decode, encode } from "./msgpack.js";

export const PROTOCOL_VERSION = 1;

/** A typed failure: `code` is one of the protocol's stable error codes. */
export class GatewayError extends Error {
  constructor(code, message, { jobId = null, fatal = false } = {}) {
    super(message);
    this.code = code;
    this.jobId = jobId;
    this.fatal = fatal;
  }
}

/** ws(s)://host/ws for the page's own origin, with ?token= when given. */
export function gatewayUrl(location, token) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const q = token ? `?token=${encodeURIComponent(token)}` : "";
  return `${scheme}://${location.host}/ws${q}`;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * One connection to the gateway (reconnects on demand).
 *
 * handlers: { audio(msg), progress(msg), info(msg), jobDone(msg), jobError(err),
 *             connection(state, detail) }  - all optional.
 * `ackWindow` > 0 turns on the protocol's ack flow control; the page acks
 * blocks with `ack(jobId, seq)` as it takes them.
 */
export class GatewaySession {
  constructor(url, { token = null, handlers = {}, ackWindow = 0, clientName = "resonate-web/0.1" } = {}) {
    this.url = url;
    this.token = token;
    this.handlers = handlers;
    this.ackWindow = ackWindow;
    this.clientName = clientName;
    this.ws = null;
    this.welcome = null;
    this.refs = 0;
    this.pending = new Map(); // ref -> {resolve, reject} (start_job)
    this.resumes = new Map(); // job_id -> {resolve, reject}
    this.fetches = new Map(); // ref -> fetch state
    this.streams = new Map(); // job_id -> {seq, offset}: the next audio expected
    this.closedByUs = false;
    this.onDrop = null; // set by the owner: called when the connection drops unexpectedly
  }

  get connected() { return this.ws !== null && this.ws.readyState === WebSocket.OPEN && this.welcome !== null; }

  get features() { return (this.welcome && this.welcome.features) || []; }
  get limits() { return (this.welcome && this.welcome.limits) || { max_chunk_bytes: 1048576 }; }

  /** Open the websocket, send hello, wait for welcome. Throws GatewayError("server_unreachable"). */
  async connect(timeoutMs = 10000) {
    if (this.connected) return this.welcome;
    this.closedByUs = false;
    const ws = new WebSocket(this.url);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    this.welcome = null;
    const welcome = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => fail(new GatewayError("server_unreachable", `no answer from ${this.url}`)), timeoutMs);
      const fail = (err) => { clearTimeout(timer); reject(err); try { ws.close(); } catch (e) { /* closed */ } };
      ws.onopen = () => this._send({ type: "hello", v: PROTOCOL_VERSION, client: this.clientName,
        token: this.token || null, ack_window: this.ackWindow });
      ws.onerror = () => fail(new GatewayError("server_unreachable", `cannot connect to ${this.url}`));
      ws.onclose = (ev) => fail(new GatewayError("server_unreachable",
        `the server closed the connection (code ${ev.code}${ev.reason ? `: ${ev.reason}` : ""})`));
      ws.onmessage = (ev) => {
        let m;
        try { m = decode(new Uint8Array(ev.data)); } catch (e) { fail(new GatewayError("malformed_frame", String(e))); return; }
        if (m.type === "welcome") { clearTimeout(timer); resolve(m); }
        else if (m.type === "error") fail(new GatewayError(m.code, m.message, { fatal: !!m.fatal }));
      };
    });
    this.welcome = welcome;
    ws.onmessage = (ev) => this._onFrame(ev.data);
    ws.onerror = () => {};
    ws.onclose = () => this._onClose(ws);
    return welcome;
  }

  /** Close on purpose (no reconnect). */
  close() {
    this.closedByUs = true;
    if (this.ws) try { this.ws.close(1000, "bye"); } catch (e) { /* closed */ }
  }

  /** Drop the connection as a failing network would (test hook): the owner reconnects. */
  dropForTest() {
    if (this.ws) this.ws.close(4000, "dropped on purpose");
  }

  _send(msg) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) throw new GatewayError("connection_lost", "not connected to the server");
    this.ws.send(encode(msg));
  }

  _onClose(ws) {
    if (ws !== this.ws) return;
    this.ws = null;
    this.welcome = null;
    const lost = new GatewayError("connection_lost", "the connection to the server dropped");
    for (const p of this.pending.values()) p.reject(lost);
    this.pending.clear();
    for (const p of this.resumes.values()) p.reject(lost);
    this.resumes.clear();
    for (const f of this.fetches.values()) f.lost = true;
    if (!this.closedByUs && this.onDrop) this.onDrop();
    for (const f of [...this.fetches.values()]) if (f.lost && f.onLost) f.onLost();
  }

  _onFrame(data) {
    let m;
    try { m = decode(new Uint8Array(data)); } catch (e) { console.warn("bad frame from the server", e); return; }
    if (typeof m !== "object" || m === null || m.v !== PROTOCOL_VERSION) return;
    const h = this.handlers;
    switch (m.type) {
      case "job_accepted": {
        const p = m.ref != null ? this.pending.get(m.ref) : this.resumes.get(m.job_id);
        if (m.ref != null) this.pending.delete(m.ref); else this.resumes.delete(m.job_id);
        if (p) p.resolve(m);
        break;
      }
      case "audio": this._onAudio(m); break;
      case "progress": if (h.progress) h.progress(m); break;
      case "info": if (h.info) h.info(m); break;
      case "job_done": if (h.jobDone) h.jobDone(m); break;
      case "file_chunk": this._onFileChunk(m); break;
      case "error": this._onError(m); break;
      default: break; // pong and types of later revisions
    }
  }

  _onAudio(m) {
    const st = this.streams.get(m.job_id);
    if (!st) return; // a job this session does not follow
    if (m.seq < st.seq) return; // already received (resume on the same connection)
    if (m.seq !== st.seq || (st.offset !== null && m.offset !== st.offset)) {
      this.streams.delete(m.job_id);
      const err = new GatewayError("bad_sequence",
        `audio block ${m.seq} at frame ${m.offset} breaks the stream (expected ${st.seq} at ${st.offset})`,
        { jobId: m.job_id });
      if (this.handlers.jobError) this.handlers.jobError(err);
      return;
    }
    st.seq += 1;
    st.offset = m.offset + m.frames;
    if (this.handlers.audio) this.handlers.audio(m);
  }

  /** Seq of the next audio block expected for `jobId`. */
  nextSeq(jobId) {
    const st = this.streams.get(jobId);
    return st ? st.seq : 0;
  }

  _onError(m) {
    const err = new GatewayError(m.code, m.message, { jobId: m.job_id || null, fatal: !!m.fatal });
    if (m.ref != null && this.fetches.has(m.ref)) { this.fetches.get(m.ref).fail(err); return; }
    if (m.ref != null && this.pending.has(m.ref)) { this.pending.get(m.ref).reject(err); this.pending.delete(m.ref); return; }
    if (m.job_id && this.resumes.has(m.job_id)) { this.resumes.get(m.job_id).reject(err); this.resumes.delete(m.job_id); }
    if (m.job_id) { if (this.handlers.jobError) this.handlers.jobError(err); return; }
    if (this.handlers.notice) this.handlers.notice(err);
  }

  /** Send start_job; resolves with the job id once accepted. */
  startJob({ settings, input, options, reference = null }) {
    const ref = `r${++this.refs}`;
    return new Promise((resolve, reject) => {
      this.pending.set(ref, {
        resolve: (m) => { this.streams.set(m.job_id, { seq: 0, offset: 0 }); resolve(m.job_id); }, reject });
      const msg = { type: "start_job", v: PROTOCOL_VERSION, ref, settings, input, options };
      if (reference) msg.reference = reference; // only sent to servers with the "reference" feature
      try { this._send(msg); }
      catch (e) { this.pending.delete(ref); reject(e); }
    });
  }

  /** Follow `jobId` again from audio `fromSeq` (default: the next one not received). */
  resume(jobId, fromSeq = this.nextSeq(jobId)) {
    const st = this.streams.get(jobId);
    if (!st || fromSeq !== st.seq) this.streams.set(jobId, { seq: fromSeq, offset: null });
    return new Promise((resolve, reject) => {
      this.resumes.set(jobId, { resolve, reject });
      try { this._send({ type: "resume", v: PROTOCOL_VERSION, job_id: jobId, from_seq: fromSeq }); }
      catch (e) { this.resumes.delete(jobId); reject(e); }
    });
  }

  ack(jobId, seq) {
    if (this.ackWindow > 0 && this.connected) this._send({ type: "ack", v: PROTOCOL_VERSION, job_id: jobId, seq });
  }

  cancel(jobId) {
    if (this.connected) this._send({ type: "cancel", v: PROTOCOL_VERSION, job_id: jobId });
  }

  /**
   * Upload `file` (a File/Blob) as upload_chunk messages then upload_end, on upload
   * `stream` ("input", or "reference" for the job's reference recording).
   * Waits while the socket's send buffer holds more than `highWater` bytes, so
   * a 1.5 GB file is read and sent a piece at a time. onProgress(sentBytes, size).
   */
  async upload(jobId, file, onProgress = null, highWater = 4 * 1048576, stream = "input") {
    const chunk = Math.min(256 * 1024, this.limits.max_chunk_bytes || 1048576);
    let index = 0;
    for (let pos = 0; pos < file.size; pos += chunk) {
      const piece = new Uint8Array(await file.slice(pos, Math.min(file.size, pos + chunk)).arrayBuffer());
      while (this.ws && this.ws.bufferedAmount > highWater) await sleep(20);
      this._send({ type: "upload_chunk", v: PROTOCOL_VERSION, job_id: jobId, index, data: piece, stream });
      index += 1;
      if (onProgress) onProgress(Math.min(file.size, pos + chunk), file.size);
    }
    this._send({ type: "upload_end", v: PROTOCOL_VERSION, job_id: jobId, chunks: index, size: file.size, stream });
    if (onProgress) onProgress(file.size, file.size);
  }

  /**
   * Download output `kind` of a finished job with `fetch`, as a Blob.
   * Resumes from the bytes it has after the connection drops and comes back
   * (the owner reconnects; this waits for it, up to `waitMs` per drop).
   * Resolves {blob, filename, mime, size, resumedFrom: [byte offsets]}.
   */
  download(jobId, kind, onProgress = null, waitMs = 30000) {
    return new Promise((resolve, reject) => {
      const state = { parts: [], received: 0, size: null, filename: null, mime: null, resumedFrom: [], lost: false };
      const send = () => {
        const ref = `f${++this.refs}`;
        state.ref = ref;
        state.lost = false;
        this.fetches.set(ref, state);
        this._send({ type: "fetch", v: PROTOCOL_VERSION, job_id: jobId, kind, offset: state.received, ref });
      };
      const finish = (err, value) => {
        this.fetches.delete(state.ref);
        if (err) reject(err); else resolve(value);
      };
      state.fail = (err) => finish(err);
      state.onChunk = (m) => {
        if (m.offset !== state.received || (state.size !== null && m.size !== state.size)) {
          finish(new GatewayError("bad_sequence", `file piece at byte ${m.offset}, expected ${state.received}`));
          return;
        }
        state.size = m.size; state.filename = m.filename; state.mime = m.mime;
        if (m.data.length) state.parts.push(m.data);
        state.received += m.data.length;
        if (onProgress) onProgress(state.received, state.size);
        if (m.eof) {
          finish(null, { blob: new Blob(state.parts, { type: state.mime }), filename: state.filename,
            mime: state.mime, size: state.size, resumedFrom: state.resumedFrom });
        }
      };
      state.onLost = async () => {
        this.fetches.delete(state.ref);
        const deadline = Date.now() + waitMs;
        while (!this.connected && Date.now() < deadline) await sleep(100);
        if (!this.connected) { reject(new GatewayError("connection_lost", "the connection dropped during the download")); return; }
        state.resumedFrom.push(state.received);
        try { send(); } catch (e) { reject(e); }
      };
      try { send(); } catch (e) { reject(e); }
    });
  }

  _onFileChunk(m) {
    const f = m.ref != null ? this.fetches.get(m.ref) : null;
    if (f) f.onChunk(m);
  }
}
