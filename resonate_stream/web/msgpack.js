// Minimal msgpack (https://github.com/msgpack/msgpack/blob/master/spec.md) for the
// Resonate protocol: nil, bool, int, float, str, bin, array, map. Extension types
// (the timestamp included) are refused, as the protocol requires.
//
//   encode(value) -> Uint8Array        decode(bytes) -> value
//
// JS -> msgpack: null/undefined -> nil (undefined map values are left out),
// integers (|x| <= 2^53) -> the smallest int encoding, other numbers -> float64,
// `new Float(x)` -> float64 even when x is whole, strings -> str (UTF-8),
// Uint8Array / ArrayBuffer / typed arrays -> bin, arrays -> array, plain objects -> map.
// msgpack -> JS: bin -> Uint8Array (a copy), map -> plain object (string keys only),
// 64-bit integers -> Number.

export class Float {
  /** Wraps a number that must travel as a msgpack float64. */
  constructor(value) { this.value = value; }
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder("utf-8", { fatal: true });
const MAX_DEPTH = 64;

class Writer {
  constructor(size = 256) {
    this.buf = new Uint8Array(size);
    this.view = new DataView(this.buf.buffer);
    this.pos = 0;
  }
  ensure(n) {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v) { this.ensure(1); this.view.setUint8(this.pos, v); this.pos += 1; }
  u16(v) { this.ensure(2); this.view.setUint16(this.pos, v); this.pos += 2; }
  u32(v) { this.ensure(4); this.view.setUint32(this.pos, v); this.pos += 4; }
  i8(v) { this.ensure(1); this.view.setInt8(this.pos, v); this.pos += 1; }
  i16(v) { this.ensure(2); this.view.setInt16(this.pos, v); this.pos += 2; }
  i32(v) { this.ensure(4); this.view.setInt32(this.pos, v); this.pos += 4; }
  u64(v) { this.ensure(8); this.view.setBigUint64(this.pos, BigInt(v)); this.pos += 8; }
  i64(v) { this.ensure(8); this.view.setBigInt64(this.pos, BigInt(v)); this.pos += 8; }
  f64(v) { this.ensure(8); this.view.setFloat64(this.pos, v); this.pos += 8; }
  bytes(b) { this.ensure(b.length); this.buf.set(b, this.pos); this.pos += b.length; }
  result() { return this.buf.slice(0, this.pos); }
}

function encodeInt(w, v) {
  if (v >= 0) {
    if (v < 0x80) w.u8(v);
    else if (v <= 0xff) { w.u8(0xcc); w.u8(v); }
    else if (v <= 0xffff) { w.u8(0xcd); w.u16(v); }
    else if (v <= 0xffffffff) { w.u8(0xce); w.u32(v); }
    else { w.u8(0xcf); w.u64(v); }
  } else {
    if (v >= -32) w.u8(0xe0 | (v + 32));
    else if (v >= -0x80) { w.u8(0xd0); w.i8(v); }
    else if (v >= -0x8000) { w.u8(0xd1); w.i16(v); }
    else if (v >= -0x80000000) { w.u8(0xd2); w.i32(v); }
    else { w.u8(0xd3); w.i64(v); }
  }
}

function encodeFloat(w, v) {
  if (!Number.isFinite(v)) throw new TypeError("msgpack: NaN and Infinity cannot be sent");
  w.u8(0xcb); w.f64(v);
}

function encodeStr(w, s) {
  const b = textEncoder.encode(s);
  const n = b.length;
  if (n < 32) w.u8(0xa0 | n);
  else if (n <= 0xff) { w.u8(0xd9); w.u8(n); }
  else if (n <= 0xffff) { w.u8(0xda); w.u16(n); }
  else { w.u8(0xdb); w.u32(n); }
  w.bytes(b);
}

function encodeBin(w, b) {
  const n = b.length;
  if (n <= 0xff) { w.u8(0xc4); w.u8(n); }
  else if (n <= 0xffff) { w.u8(0xc5); w.u16(n); }
  else { w.u8(0xc6); w.u32(n); }
  w.bytes(b);
}

function encodeValue(w, v, depth) {
  if (depth > MAX_DEPTH) throw new TypeError("msgpack: value nested too deeply");
  if (v === null || v === undefined) { w.u8(0xc0); return; }
  if (v === false) { w.u8(0xc2); return; }
  if (v === true) { w.u8(0xc3); return; }
  if (v instanceof Float) { encodeFloat(w, v.value); return; }
  if (typeof v === "number") {
    if (Number.isInteger(v) && Math.abs(v) <= Number.MAX_SAFE_INTEGER) encodeInt(w, v);
    else encodeFloat(w, v);
    return;
  }
  if (typeof v === "string") { encodeStr(w, v); return; }
  if (v instanceof Uint8Array) { encodeBin(w, v); return; }
  if (v instanceof ArrayBuffer) { encodeBin(w, new Uint8Array(v)); return; }
  if (ArrayBuffer.isView(v)) { encodeBin(w, new Uint8Array(v.buffer, v.byteOffset, v.byteLength)); return; }
  if (Array.isArray(v)) {
    const n = v.length;
    if (n < 16) w.u8(0x90 | n);
    else if (n <= 0xffff) { w.u8(0xdc); w.u16(n); }
    else { w.u8(0xdd); w.u32(n); }
    for (const item of v) encodeValue(w, item, depth + 1);
    return;
  }
  if (typeof v === "object") {
    const keys = Object.keys(v).filter((k) => v[k] !== undefined);
    const n = keys.length;
    if (n < 16) w.u8(0x80 | n);
    else if (n <= 0xffff) { w.u8(0xde); w.u16(n); }
    else { w.u8(0xdf); w.u32(n); }
    for (const k of keys) { encodeStr(w, k); encodeValue(w, v[k], depth + 1); }
    return;
  }
  throw new TypeError(`msgpack: cannot encode a ${typeof v}`);
}

/** The msgpack bytes of `value`. */
export function encode(value) {
  const w = new Writer();
  encodeValue(w, value, 0);
  return w.result();
}

class Reader {
  constructor(bytes) {
    this.buf = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = 0;
  }
  need(n) {
    if (this.pos + n > this.buf.length) throw new RangeError("msgpack: data ends in the middle of a value");
  }
  u8() { this.need(1); return this.view.getUint8(this.pos++); }
  u16() { this.need(2); const v = this.view.getUint16(this.pos); this.pos += 2; return v; }
  u32() { this.need(4); const v = this.view.getUint32(this.pos); this.pos += 4; return v; }
  i8() { this.need(1); return this.view.getInt8(this.pos++); }
  i16() { this.need(2); const v = this.view.getInt16(this.pos); this.pos += 2; return v; }
  i32() { this.need(4); const v = this.view.getInt32(this.pos); this.pos += 4; return v; }
  u64() { this.need(8); const v = this.view.getBigUint64(this.pos); this.pos += 8; return Number(v); }
  i64() { this.need(8); const v = this.view.getBigInt64(this.pos); this.pos += 8; return Number(v); }
  f32() { this.need(4); const v = this.view.getFloat32(this.pos); this.pos += 4; return v; }
  f64() { this.need(8); const v = this.view.getFloat64(this.pos); this.pos += 8; return v; }
  bytes(n) { this.need(n); const b = this.buf.slice(this.pos, this.pos + n); this.pos += n; return b; }
  str(n) { this.need(n); const s = textDecoder.decode(this.buf.subarray(this.pos, this.pos + n)); this.pos += n; return s; }
}

function readArray(r, n, depth) {
  const out = new Array(n);
  for (let i = 0; i < n; i++) out[i] = readValue(r, depth + 1);
  return out;
}

function readMap(r, n, depth) {
  const out = {};
  for (let i = 0; i < n; i++) {
    const k = readValue(r, depth + 1);
    if (typeof k !== "string") throw new TypeError("msgpack: map keys must be strings");
    const v = readValue(r, depth + 1);
    Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

function readValue(r, depth) {
  if (depth > MAX_DEPTH) throw new RangeError("msgpack: value nested too deeply");
  const t = r.u8();
  if (t < 0x80) return t;
  if (t >= 0xe0) return t - 0x100;
  if ((t & 0xf0) === 0x80) return readMap(r, t & 0x0f, depth);
  if ((t & 0xf0) === 0x90) return readArray(r, t & 0x0f, depth);
  if ((t & 0xe0) === 0xa0) return r.str(t & 0x1f);
  switch (t) {
    case 0xc0: return null;
    case 0xc2: return false;
    case 0xc3: return true;
    case 0xc4: return r.bytes(r.u8());
    case 0xc5: return r.bytes(r.u16());
    case 0xc6: return r.bytes(r.u32());
    case 0xca: return r.f32();
    case 0xcb: return r.f64();
    case 0xcc: return r.u8();
    case 0xcd: return r.u16();
    case 0xce: return r.u32();
    case 0xcf: return r.u64();
    case 0xd0: return r.i8();
    case 0xd1: return r.i16();
    case 0xd2: return r.i32();
    case 0xd3: return r.i64();
    case 0xd9: return r.str(r.u8());
    case 0xda: return r.str(r.u16());
    case 0xdb: return r.str(r.u32());
    case 0xdc: return readArray(r, r.u16(), depth);
    case 0xdd: return readArray(r, r.u32(), depth);
    case 0xde: return readMap(r, r.u16(), depth);
    case 0xdf: return readMap(r, r.u32(), depth);
    default:
      if (t === 0xc1) throw new TypeError("msgpack: 0xc1 is never used");
      throw new TypeError(`msgpack: extension types are not allowed (byte 0x${t.toString(16)})`);
  }
}

/** The value held by `bytes` (Uint8Array or ArrayBuffer); exactly one value, no trailing bytes. */
export function decode(bytes) {
  const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const r = new Reader(b);
  const v = readValue(r, 0);
  if (r.pos !== b.length) throw new RangeError(`msgpack: ${b.length - r.pos} bytes after the value`);
  return v;
}
