// Downsampled overviews of a stream for drawing: a waveform (min/max per column)
// and a spectrogram (one 1024-point spectrum per column, 96 log-spaced bands from
// 40 Hz to 20 kHz). Memory is fixed: `columns` entries whatever the duration. When
// the stream outgrows the columns, neighbours are merged and each column covers
// twice as long (so a stream of unknown length works too).

const FFT_SIZE = 1024;
const BANDS = 96;
const F_LO = 40;
const F_HI = 20000;
const DB_FLOOR = -95; // band power (dB re a full-scale sine) drawn darkest
const DB_CEIL = -5; // ... and brightest

function hann(n) {
  const w = new Float32Array(n);
  for (let i = 0; i < n; i++) w[i] = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / (n - 1));
  return w;
}
const WINDOW = hann(FFT_SIZE);
const WINDOW_GAIN = WINDOW.reduce((a, b) => a + b, 0) / 2;

/** In-place radix-2 FFT of (re, im), length a power of two. */
export function fft(re, im) {
  const n = re.length;
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) { [re[i], re[j]] = [re[j], re[i]]; [im[i], im[j]] = [im[j], im[i]]; }
  }
  for (let len = 2; len <= n; len <<= 1) {
    const ang = (-2 * Math.PI) / len;
    const wr = Math.cos(ang), wi = Math.sin(ang);
    for (let i = 0; i < n; i += len) {
      let cr = 1, ci = 0;
      for (let k = 0; k < len / 2; k++) {
        const a = i + k, b = a + len / 2;
        const tr = re[b] * cr - im[b] * ci, ti = re[b] * ci + im[b] * cr;
        re[b] = re[a] - tr; im[b] = im[a] - ti;
        re[a] += tr; im[a] += ti;
        const nr = cr * wr - ci * wi; ci = cr * wi + ci * wr; cr = nr;
      }
    }
  }
}

function bandEdges(sampleRate) {
  const edges = new Int32Array(BANDS + 1);
  const binHz = sampleRate / FFT_SIZE;
  for (let b = 0; b <= BANDS; b++) {
    const f = F_LO * Math.pow(F_HI / F_LO, b / BANDS);
    edges[b] = Math.min(FFT_SIZE / 2, Math.max(1, Math.round(f / binHz)));
  }
  return edges;
}

export class Overview {
  /**
   * sampleRate: Hz; columns: width of the overview; durationS: expected length
   * (seconds) when known, so that the columns span it exactly.
   */
  constructor(sampleRate, { columns = 800, durationS = null } = {}) {
    this.sampleRate = sampleRate;
    this.columns = columns;
    this.bucket = Math.max(FFT_SIZE, Math.ceil(((durationS || 8) * sampleRate) / columns)); // frames per column
    this.min = new Float32Array(columns);
    this.max = new Float32Array(columns);
    this.spec = new Uint8Array(columns * BANDS);
    this.filled = 0; // waveform columns (partly) filled
    this.specCols = 0; // spectrogram columns done
    this.frames = 0; // mono frames consumed
    this.win = new Float32Array(FFT_SIZE);
    this.winFill = 0; // samples collected for the next spectrum
    this.edges = bandEdges(sampleRate);
    this.re = new Float32Array(FFT_SIZE);
    this.im = new Float32Array(FFT_SIZE);
    this.version = 0; // bumps on every change (redraw when it moved)
  }

  /** Seconds covered by one column. */
  get columnS() { return this.bucket / this.sampleRate; }

  /** Frames covered so far. */
  get durationS() { return this.frames / this.sampleRate; }

  _grow() {
    const n = this.columns;
    for (let i = 0; i < n / 2; i++) {
      this.min[i] = Math.min(this.min[2 * i], this.min[2 * i + 1]);
      this.max[i] = Math.max(this.max[2 * i], this.max[2 * i + 1]);
      for (let b = 0; b < BANDS; b++) {
        this.spec[i * BANDS + b] = (this.spec[2 * i * BANDS + b] + this.spec[(2 * i + 1) * BANDS + b]) >> 1;
      }
    }
    this.min.fill(0, n / 2); this.max.fill(0, n / 2); this.spec.fill(0, (n / 2) * BANDS);
    this.bucket *= 2;
    this.filled = Math.ceil(this.filled / 2);
    this.specCols = Math.floor(this.specCols / 2);
  }

  /** Add interleaved samples (`channels` per frame). */
  pushInterleaved(data, channels) {
    const frames = Math.floor(data.length / channels);
    const mono = new Float32Array(frames);
    for (let i = 0, j = 0; i < frames; i++) {
      let s = 0;
      for (let c = 0; c < channels; c++, j++) s += data[j];
      mono[i] = s / channels;
    }
    this.pushMono(mono);
  }

  /** Add planar channels (e.g. an AudioBuffer's getChannelData arrays). */
  pushPlanar(chans, start = 0, end = null) {
    const stop = end === null ? chans[0].length : end;
    const mono = new Float32Array(stop - start);
    for (const ch of chans) for (let i = start; i < stop; i++) mono[i - start] += ch[i] / chans.length;
    this.pushMono(mono);
  }

  pushMono(mono) {
    for (let i = 0; i < mono.length; i++) {
      let col = Math.floor(this.frames / this.bucket);
      while (col >= this.columns) { this._grow(); col = Math.floor(this.frames / this.bucket); }
      const v = mono[i];
      if (col >= this.filled) { this.min[col] = v; this.max[col] = v; this.filled = col + 1; }
      else { if (v < this.min[col]) this.min[col] = v; if (v > this.max[col]) this.max[col] = v; }
      // spectrum: the first FFT_SIZE samples of each column
      const posInCol = this.frames - col * this.bucket;
      if (col >= this.specCols && posInCol < FFT_SIZE) {
        this.win[posInCol] = v;
        if (posInCol === FFT_SIZE - 1) { this._spectrum(col); this.specCols = col + 1; }
      }
      this.frames += 1;
    }
    this.version += 1;
  }

  _spectrum(col) {
    const re = this.re, im = this.im;
    for (let i = 0; i < FFT_SIZE; i++) { re[i] = this.win[i] * WINDOW[i]; im[i] = 0; }
    fft(re, im);
    const base = col * BANDS;
    for (let b = 0; b < BANDS; b++) {
      let p = 0;
      const lo = this.edges[b], hi = Math.max(this.edges[b + 1], lo + 1);
      for (let k = lo; k < hi; k++) p += re[k] * re[k] + im[k] * im[k];
      p /= hi - lo; // mean power of the band's bins
      const db = 10 * Math.log10(p / (WINDOW_GAIN * WINDOW_GAIN) + 1e-20);
      this.spec[base + b] = Math.max(0, Math.min(255, Math.round(((db - DB_FLOOR) / (DB_CEIL - DB_FLOOR)) * 255)));
    }
  }
}

// ---- drawing ----------------------------------------------------------------

const STOPS = [[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21], [250, 193, 39], [252, 255, 164]];
const PALETTE = (() => {
  const p = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const x = (i / 255) * (STOPS.length - 1);
    const k = Math.min(STOPS.length - 2, Math.floor(x));
    const t = x - k;
    for (let c = 0; c < 3; c++) p[i * 3 + c] = STOPS[k][c] + (STOPS[k + 1][c] - STOPS[k][c]) * t;
  }
  return p;
})();

function label(g, text, x, y) {
  g.font = "12px system-ui, sans-serif";
  const w = g.measureText(text).width + 8;
  g.fillStyle = "rgba(13,17,23,0.75)"; g.fillRect(x, y, w, 16);
  g.fillStyle = "#d0d7de"; g.fillText(text, x + 4, y + 12);
}

/** Waveforms of `before` and `after` (Overview or null) over `spanS` seconds, play head at `headS`. */
export function drawWaveforms(canvas, before, after, spanS, headS) {
  const g = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  g.clearRect(0, 0, w, h);
  g.fillStyle = "#11161c"; g.fillRect(0, 0, w, h);
  const half = h / 2;
  const lane = (ov, top, colour) => {
    if (!ov || !spanS) return;
    g.fillStyle = colour;
    const mid = top + half / 2;
    for (let c = 0; c < ov.filled; c++) {
      const x0 = ((c * ov.columnS) / spanS) * w;
      const x1 = (((c + 1) * ov.columnS) / spanS) * w;
      const y0 = mid - ov.max[c] * (half / 2 - 2);
      const y1 = mid - ov.min[c] * (half / 2 - 2);
      g.fillRect(x0, y0, Math.max(1, x1 - x0), Math.max(1, y1 - y0));
    }
  };
  lane(before, 0, "#7f9bb3");
  lane(after, half, "#f0a040");
  label(g, "before (original)", 4, 3);
  label(g, "after (restored)", 4, half + 3);
  g.fillStyle = "#2b3440"; g.fillRect(0, half, w, 1);
  if (spanS && headS !== null) { g.fillStyle = "#ffffff"; g.fillRect((headS / spanS) * w, 0, 1, h); }
}

/** Spectrograms of `before` (top) and `after` (bottom). */
export function drawSpectrograms(canvas, before, after, spanS, headS) {
  const g = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  const img = g.createImageData(w, h);
  const half = Math.floor(h / 2);
  const paint = (ov, top) => {
    if (!ov || !spanS) return;
    for (let x = 0; x < w; x++) {
      const c = Math.floor(((x / w) * spanS) / ov.columnS);
      if (c >= ov.specCols) continue;
      for (let y = 0; y < half; y++) {
        const band = Math.floor(((half - 1 - y) / half) * BANDS);
        const v = ov.spec[c * BANDS + band];
        const o = ((top + y) * w + x) * 4;
        img.data[o] = PALETTE[v * 3]; img.data[o + 1] = PALETTE[v * 3 + 1]; img.data[o + 2] = PALETTE[v * 3 + 2];
        img.data[o + 3] = 255;
      }
    }
  };
  for (let i = 3; i < img.data.length; i += 4) img.data[i] = 255;
  paint(before, 0);
  paint(after, half);
  g.putImageData(img, 0, 0);
  label(g, "before: 40 Hz – 20 kHz", 4, 3);
  label(g, "after", 4, half + 3);
  g.fillStyle = "#000"; g.fillRect(0, half, w, 1);
  if (spanS && headS !== null) { g.fillStyle = "rgba(255,255,255,0.8)"; g.fillRect((headS / spanS) * w, 0, 1, h); }
}
