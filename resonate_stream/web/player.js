// Gapless playback of audio blocks as they stream in, with an A/B switch to the
// original recording at the same position and solo/mute of streamed stems.
//
// Timeline: while playing, position(t) = anchorPos + (ctx.currentTime - anchorCtx)
// seconds of the output. Every received block becomes an AudioBuffer scheduled at
// anchorCtx + (block start - anchorPos), back to back, a few seconds ahead of the
// play head. The original (decoded locally) plays from the same anchor, so A/B is
// just two gains crossfading: the position never jumps.
//
// Memory: blocks more than `behindS` seconds behind the play head are dropped;
// the page paces the stream (protocol acks) so at most about `aheadS` seconds
// wait ahead of it.

const XFADE_S = 0.015; // A/B and stem switch time constant, seconds

export class StreamPlayer {
  constructor({ sampleRate = 44100, startBufferS = 2.0, lookaheadS = 4.0, behindS = 120, aheadS = 600 } = {}) {
    this.sampleRate = sampleRate;
    this.startBufferS = startBufferS;
    this.lookaheadS = lookaheadS;
    this.behindS = behindS;
    this.aheadS = aheadS;
    this.ctx = null;
    this.original = null; // AudioBuffer of the chosen file, or null
    this.abState = "restored";
    this.stemState = {}; // name -> {mute, solo}
    this.onState = null; // callback(state)
    this.reset();
  }

  /** The AudioContext (created on first use, at the stream's rate so nothing resamples). */
  context() {
    if (!this.ctx) {
      this.ctx = new AudioContext({ sampleRate: this.sampleRate, latencyHint: "playback" });
      this.out = this.ctx.createGain();
      this.out.connect(this.ctx.destination);
      this.originalGain = this.ctx.createGain();
      this.restoredGain = this.ctx.createGain();
      this.mixGain = this.ctx.createGain();
      this.originalGain.connect(this.out);
      this.restoredGain.connect(this.out);
      this.mixGain.connect(this.restoredGain);
      this.stemGains = {};
      this._applyGains(true);
    }
    return this.ctx;
  }

  /** Forget the stream (a new job); keeps the original and the A/B choice. */
  reset() {
    if (this.ctx) this._stopSources();
    this.blocks = []; // {start, frames, channels, data: Float32Array interleaved, stems}
    this.channels = 2;
    this.receivedFrames = 0; // end of the contiguous stream, frames
    this.droppedFrames = 0; // frames dropped behind the play head
    this.ended = false; // no more blocks will come
    this.state = "idle"; // idle | waiting | playing | paused | buffering | ended
    this.userPaused = false;
    this.anchorCtx = 0;
    this.anchorPos = 0;
    this.pausedPos = 0;
    this.sources = new Set();
    this.originalSource = null;
    this.scheduledUntil = 0; // output frame up to which restored blocks are scheduled
    this.scheduledBlocks = 0;
    this.playbackStartedAt = null; // performance.now() of the first start
    this.stemNames = [];
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  setOriginal(buffer) { this.original = buffer; }

  /** Seconds received beyond the play head. */
  aheadSeconds() { return Math.max(0, this.receivedFrames / this.sampleRate - this.position()); }

  /** Play head, seconds of the output. */
  position() {
    if (this.state === "playing" && this.ctx) return Math.max(0, this.anchorPos + (this.ctx.currentTime - this.anchorCtx));
    return this.pausedPos;
  }

  get durationS() { return this.receivedFrames / this.sampleRate; }

  /** Add the next block: `data` interleaved float32, `stems` name -> interleaved float32 or null. */
  addBlock(offset, frames, channels, data, stems) {
    if (offset !== this.receivedFrames) throw new Error(`block at frame ${offset}, expected ${this.receivedFrames}`);
    this.channels = channels;
    this.blocks.push({ start: offset, frames, channels, data, stems });
    this.receivedFrames += frames;
    if (stems) for (const name of Object.keys(stems)) if (!this.stemNames.includes(name)) this.stemNames.push(name);
    if (this.state === "idle") this._setState("waiting");
    this._tick();
  }

  /** No more blocks will come (job_done or failure). */
  endOfStream() { this.ended = true; this._tick(); }

  play(fromS = null) {
    const ctx = this.context();
    if (ctx.state === "suspended") ctx.resume();
    this.userPaused = false;
    if (fromS === null && this.state === "ended") fromS = 0; // play again from the top
    const from = Math.max(this._earliestS(), fromS === null ? this.pausedPos : fromS);
    if (this.receivedFrames / this.sampleRate - from < Math.min(this.startBufferS, 0.5) && !this.ended) {
      this.pausedPos = from;
      this._setState("buffering");
      this._ensureTimer();
      return;
    }
    this._startAt(from);
  }

  pause() {
    this.userPaused = true;
    this.pausedPos = this.position();
    this._stopSources();
    this._setState("paused");
  }

  seek(s) {
    const target = Math.min(Math.max(this._earliestS(), s), this.receivedFrames / this.sampleRate);
    if (this.state === "playing") this._startAt(target);
    else this.pausedPos = target;
  }

  setAB(which) {
    if (which !== "original" && which !== "restored") throw new Error(`A/B must be original or restored, not ${which}`);
    this.abState = which;
    this._applyGains(false);
  }

  setStem(name, { mute, solo }) {
    const s = this.stemState[name] || { mute: false, solo: false };
    if (mute !== undefined) s.mute = mute;
    if (solo !== undefined) s.solo = solo;
    this.stemState[name] = s;
    this._applyGains(false);
  }

  /** Current gains (linear, targets), for the UI and tests. */
  gains() {
    return { original: this.abState === "original" ? 1 : 0, restored: this.abState === "restored" ? 1 : 0,
      mix: this._stemMode() ? 0 : 1,
      stems: Object.fromEntries(this.stemNames.map((n) => [n, this._stemAudible(n) ? 1 : 0])) };
  }

  // ---- internals --------------------------------------------------------------
  _setState(s) {
    if (this.state === s) return;
    this.state = s;
    if (this.onState) this.onState(s);
  }

  _earliestS() { return this.blocks.length ? this.blocks[0].start / this.sampleRate : this.receivedFrames / this.sampleRate; }

  _stemMode() { return Object.values(this.stemState).some((s) => s.mute || s.solo); }

  _stemAudible(name) {
    if (!this._stemMode()) return false;
    const anySolo = Object.values(this.stemState).some((s) => s.solo);
    const s = this.stemState[name] || { mute: false, solo: false };
    return anySolo ? s.solo : !s.mute;
  }

  _applyGains(now) {
    if (!this.ctx) return;
    const t = this.ctx.currentTime;
    const g = this.gains();
    const set = (node, v) => {
      if (now) node.gain.value = v;
      else node.gain.setTargetAtTime(v, t, XFADE_S);
    };
    set(this.originalGain, this.original ? g.original : 0);
    set(this.restoredGain, g.restored);
    set(this.mixGain, g.mix);
    for (const [name, node] of Object.entries(this.stemGains)) set(node, g.stems[name] || 0);
  }

  _stemGain(name) {
    if (!this.stemGains[name]) {
      const node = this.ctx.createGain();
      node.gain.value = this.gains().stems[name] || 0;
      node.connect(this.restoredGain);
      this.stemGains[name] = node;
    }
    return this.stemGains[name];
  }

  _startAt(from) {
    const ctx = this.context();
    this._stopSources();
    this.anchorCtx = ctx.currentTime + 0.05;
    this.anchorPos = from;
    this.scheduledUntil = Math.round(from * this.sampleRate);
    if (this.original && from < this.original.duration) {
      const src = ctx.createBufferSource();
      src.buffer = this.original;
      src.connect(this.originalGain);
      src.start(this.anchorCtx, from);
      this.originalSource = src;
    }
    this._setState("playing");
    if (this.playbackStartedAt === null) this.playbackStartedAt = performance.now();
    this._schedule();
    this._ensureTimer();
  }

  _stopSources() {
    for (const src of this.sources) { try { src.stop(); } catch (e) { /* not started */ } }
    this.sources.clear();
    if (this.originalSource) { try { this.originalSource.stop(); } catch (e) { /* stopped */ } }
    this.originalSource = null;
  }

  _buffer(ch, frames, interleaved) {
    const buf = this.ctx.createBuffer(ch, frames, this.sampleRate);
    for (let c = 0; c < ch; c++) {
      const out = buf.getChannelData(c);
      for (let i = 0, j = c; i < frames; i++, j += ch) out[i] = interleaved[j];
    }
    return buf;
  }

  _scheduleOne(buffer, node, when, offsetS) {
    const src = this.ctx.createBufferSource();
    src.buffer = buffer;
    src.connect(node);
    src.onended = () => this.sources.delete(src);
    src.start(when, offsetS);
    this.sources.add(src);
  }

  /** Schedule every received block that starts before play head + lookahead. */
  _schedule() {
    if (this.state !== "playing") return;
    const sr = this.sampleRate;
    const horizon = Math.round((this.position() + this.lookaheadS) * sr);
    for (const b of this.blocks) {
      const end = b.start + b.frames;
      if (end <= this.scheduledUntil) continue;
      if (b.start >= horizon) break;
      const from = Math.max(b.start, this.scheduledUntil); // first frame of this block still to play
      const when = this.anchorCtx + (from / sr - this.anchorPos);
      const skip = (from - b.start) / sr;
      this._scheduleOne(this._buffer(b.channels, b.frames, b.data), this.mixGain, when, skip);
      if (b.stems) {
        for (const [name, data] of Object.entries(b.stems)) {
          this._scheduleOne(this._buffer(b.channels, b.frames, data), this._stemGain(name), when, skip);
        }
      }
      this.scheduledUntil = end;
      this.scheduledBlocks += 1;
    }
  }

  _ensureTimer() {
    if (!this.timer) this.timer = setInterval(() => this._tick(), 100);
  }

  _tick() {
    const sr = this.sampleRate;
    const pos = this.position();
    const endS = this.receivedFrames / sr;
    if (this.state === "waiting" && !this.userPaused && (endS >= this.startBufferS || this.ended)) {
      this._startAt(0);
    } else if (this.state === "buffering" && !this.userPaused &&
               (endS - this.pausedPos >= this.startBufferS || this.ended)) {
      if (this.pausedPos < endS) this._startAt(this.pausedPos); else this._setState(this.ended ? "ended" : "buffering");
    } else if (this.state === "playing") {
      if (pos >= endS - 0.01) {
        this.pausedPos = endS;
        this._stopSources();
        this._setState(this.ended ? "ended" : "buffering"); // ran out: wait for more, then go on
      } else {
        this._schedule();
      }
    }
    // drop what lies far behind the play head (memory stays bounded)
    const keepFrom = Math.round((pos - this.behindS) * sr);
    while (this.blocks.length && this.blocks[0].start + this.blocks[0].frames < keepFrom &&
           this.blocks[0].start + this.blocks[0].frames <= this.scheduledUntil) {
      const b = this.blocks.shift();
      this.droppedFrames += b.frames;
    }
  }
}

/** Interleaved float32 samples of a little-endian f32 byte array (copied, aligned). */
export function f32leToFloat32(bytes) {
  if (LITTLE_ENDIAN) {
    const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
    return new Float32Array(aligned.buffer, aligned.byteOffset, aligned.length >> 2);
  }
  const copy = bytes.slice();
  const view = new DataView(copy.buffer);
  const out = new Float32Array(copy.length >> 2);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
