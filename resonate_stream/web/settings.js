// The page's settings: a preset plus the few values the listener changed
// (overrides, same nesting as a preset), the output file options, and
// whether stems are streamed. Persisted in localStorage.

export const STEMS = ["vocals", "drums", "bass", "other"];
export const STORAGE_KEY = "resonate.settings.v1";

/** Controls of the page: id -> {path (dotted settings key), min, max, step, unit, fallback}. */
export const CONTROLS = (() => {
  const c = {};
  for (const s of STEMS) {
    c[`nr-${s}`] = { path: `enhance.${s}.noise_reduction`, min: 0, max: 1, step: 0.05, fallback: 0 };
    c[`eq-${s}`] = { path: `enhance.${s}.eq_intensity`, min: 0, max: 1, step: 0.05, fallback: 0 };
    c[`gain-${s}`] = { path: `mix.gains_db.${s}`, min: -12, max: 12, step: 0.5, unit: "dB", fallback: 0 };
  }
  c["high-band"] = { path: "restore.high_band", min: 0, max: 2, step: 0.1, fallback: 1 };
  c["sub-bass"] = { path: "restore.sub_bass", min: 0, max: 2, step: 0.1, fallback: 0.5 };
  return c;
})();

export function getPath(obj, path) {
  let cur = obj;
  for (const k of path.split(".")) {
    if (cur === null || typeof cur !== "object" || !(k in cur)) return undefined;
    cur = cur[k];
  }
  return cur;
}

export function setPath(obj, path, value) {
  const keys = path.split(".");
  let cur = obj;
  for (const k of keys.slice(0, -1)) {
    if (cur[k] === null || typeof cur[k] !== "object") cur[k] = {};
    cur = cur[k];
  }
  cur[keys[keys.length - 1]] = value;
}

export function deletePath(obj, path) {
  const keys = path.split(".");
  const stack = [obj];
  for (const k of keys.slice(0, -1)) {
    const next = stack[stack.length - 1][k];
    if (next === null || typeof next !== "object") return;
    stack.push(next);
  }
  delete stack[stack.length - 1][keys[keys.length - 1]];
  for (let i = keys.length - 2; i >= 0; i--) { // remove maps left empty
    if (Object.keys(stack[i + 1]).length === 0) delete stack[i][keys[i]];
  }
}

export function defaultState() {
  return { preset: null, quality: null, overrides: {}, output: { format: "wav", bit_depth: 24 },
    sendStems: false, listen: true };
}

/** The saved state, or the default one (never throws). */
export function loadState(storage = window.localStorage) {
  try {
    const raw = storage.getItem(STORAGE_KEY);
    if (!raw) return defaultState();
    const s = JSON.parse(raw);
    const d = defaultState();
    return { ...d, ...s, output: { ...d.output, ...(s.output || {}) },
      overrides: s.overrides && typeof s.overrides === "object" ? s.overrides : {} };
  } catch (e) {
    return defaultState();
  }
}

export function saveState(state, storage = window.localStorage) {
  try { storage.setItem(STORAGE_KEY, JSON.stringify(state)); } catch (e) { /* private mode: not saved */ }
}

/** Value shown for a control: the override, else the preset's, else the fallback. */
export function effectiveValue(state, catalogue, id) {
  const ctl = CONTROLS[id];
  const o = getPath(state.overrides, ctl.path);
  if (typeof o === "number") return o;
  const preset = catalogue && state.preset ? catalogue.presets[state.preset] : null;
  const p = preset ? getPath(preset, ctl.path) : undefined;
  return typeof p === "number" ? p : ctl.fallback;
}

/** `start_job.settings` for the state: {preset, overrides}. */
export function jobSettings(state, catalogue) {
  const preset = state.preset || (catalogue && catalogue.default) || "balanced";
  const overrides = JSON.parse(JSON.stringify(state.overrides || {}));
  if (state.quality) setPath(overrides, "separation.quality", state.quality);
  return { preset, overrides };
}

/** `start_job.options` for the state. */
export function jobOptions(state) {
  const fmt = state.output.format;
  let depth = Number(state.output.bit_depth);
  if (fmt === "flac" && depth === 32) depth = 24; // FLAC stores integers only
  return { send_stems: !!state.sendStems, output: { format: fmt, bit_depth: depth, sample_rate: null } };
}
