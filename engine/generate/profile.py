"""The musical profile JASCO is conditioned on: chords, melody salience, tempo, key (module 11).

Pure numpy/librosa, one analysis per generation window (10 s by default):

* **chords** (:func:`detect_chords`): chroma (one STFT, 20 frames/s) matched
  against the 24 major/minor triad templates, median-smoothed over 0.5 s,
  quiet frames ``N``; labels are JASCO's (``C``, ``C#m``, ``Bb`` ..., all keys of
  its ``chord_to_index_mapping.pkl``) with start times in seconds.  This is
  the documented fallback for Chordino (``chord-extractor``, a Vamp plugin that
  needs a compiled build): it knows triads only (no sevenths, inversions).
* **melody salience** (:func:`melody_salience`): JASCO's 53 semitone bins,
  MIDI 43-95, at 50 frames/s, by harmonic summation over the same kind of STFT
  (4 harmonics, weights 1, 0.8, 0.6, 0.4); each frame keeps its strongest
  bin (one-hot, as JASCO's salience input), frames 30 dB below the loudest are empty.
* **tempo** (:func:`detect_tempo`): librosa's beat tracker on the onset
  envelope; BPM from the mean interval between the first and last beat (finer
  than the tempogram's bins).
* **key** (:func:`detect_key`): Krumhansl-Kessler profiles correlated with the
  window's mean chroma.

:class:`ProfileStage` streams: it passes its input through untouched (zero
latency) and profiles each window ``[k * stride, k * stride + window)`` once it
is complete (the last, shorter one at :meth:`flush`), so what it finds does
not depend on how the stream was cut into blocks.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..audio import SAMPLE_RATE
from ..stage import Stage

ROOTS = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
#: JASCO's melody bins: MIDI notes 43 .. 95 (G2 .. B6), 50 frames/s
MELODY_MIDI_LOW, MELODY_BINS, MELODY_FPS = 43, 53, 50
CHORD_FPS = 20
_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def _mono(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x.mean(axis=0) if x.ndim == 2 else x


def _stft_mag(y: np.ndarray, sr: int, n_fft: int, hop: int) -> np.ndarray:
    import librosa

    return np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop, center=True, window="hann")).astype(np.float32)


def chroma(y: np.ndarray, sr: int = SAMPLE_RATE, fps: int = CHORD_FPS) -> np.ndarray:
    """``(12, frames)`` chroma (pitch classes from C) of mono ``y`` at ``fps`` frames/s (one STFT)."""
    import librosa

    hop = int(round(sr / fps))
    mag = _stft_mag(y, sr, 8192, hop)
    freqs = np.fft.rfftfreq(8192, 1.0 / sr)
    band = (freqs >= 55.0) & (freqs <= 2000.0)
    pc = np.mod(np.round(librosa.hz_to_midi(freqs[band])).astype(int), 12)
    out = np.zeros((12, mag.shape[1]), np.float32)
    np.add.at(out, pc, mag[band] ** 2)
    return out


def _triad_templates() -> tuple[np.ndarray, list[str]]:
    t, labels = [], []
    for quality, third in (("", 4), ("m", 3)):
        for r, name in enumerate(ROOTS):
            v = np.zeros(12)
            v[[r, (r + third) % 12, (r + 7) % 12]] = 1.0
            t.append(v / np.linalg.norm(v))
            labels.append(name + quality)
    return np.array(t, np.float32), labels


def detect_chords(y: np.ndarray, sr: int = SAMPLE_RATE, min_s: float = 0.5,
                  silence_db: float = -40.0) -> list[tuple[str, float]]:
    """``[(label, start_s), ...]``: the chord changes of mono (or ``(2, n)``) ``y``; ``N`` is no chord."""
    from scipy.ndimage import median_filter

    c = chroma(_mono(y), sr)
    if c.shape[1] == 0:
        return [("N", 0.0)]
    energy = c.sum(axis=0)
    norm = c / np.maximum(np.linalg.norm(c, axis=0, keepdims=True), 1e-12)
    templates, labels = _triad_templates()
    best = np.argmax(templates @ norm, axis=0)
    quiet = 10 * np.log10(np.maximum(energy, 1e-20) / max(float(energy.max()), 1e-20)) < silence_db
    idx = np.where(quiet | (energy <= 0), len(labels), best)
    width = max(1, int(round(min_s * CHORD_FPS)) | 1)
    idx = median_filter(idx, size=width, mode="nearest")
    names = labels + ["N"]
    change = np.flatnonzero(np.diff(idx) != 0) + 1
    starts = np.concatenate([[0], change])
    return [(names[int(idx[s])], round(float(s) / CHORD_FPS, 3)) for s in starts]


def melody_salience(y: np.ndarray, sr: int = SAMPLE_RATE, floor_db: float = -30.0) -> np.ndarray:
    """``(53, frames)`` one-hot melody salience of mono (or ``(2, n)``) ``y``: MIDI 43-95 at 50 frames/s.

    ``frames = ceil(len(y) / (sr / 50))`` (JASCO's ``segment_duration * 50`` for a full window).
    """
    import librosa

    y = _mono(y)
    hop = int(round(sr / MELODY_FPS))
    frames = -(-len(y) // hop)
    out = np.zeros((MELODY_BINS, frames), np.float32)
    if frames == 0:
        return out
    n_fft = 4096
    mag = _stft_mag(y, sr, n_fft, hop)[:, :frames]
    f0 = librosa.midi_to_hz(np.arange(MELODY_MIDI_LOW, MELODY_MIDI_LOW + MELODY_BINS))
    bin_hz = sr / n_fft
    sal = np.zeros((MELODY_BINS, mag.shape[1]), np.float32)
    for h, w in ((1, 1.0), (2, 0.8), (3, 0.6), (4, 0.4)):  # 4 harmonics: a loop over 4, not frames
        pos = np.clip(f0 * h / bin_hz, 0, mag.shape[0] - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, mag.shape[0] - 1)
        frac = (pos - lo)[:, None].astype(np.float32)
        sal += w * ((1 - frac) * mag[lo] + frac * mag[hi])
    peak = sal.max(axis=0)
    loud = 20 * np.log10(np.maximum(peak, 1e-12) / max(float(peak.max()), 1e-12)) > floor_db
    loud &= peak > 0
    cols = np.flatnonzero(loud)
    out[np.argmax(sal[:, cols], axis=0), cols] = 1.0
    return out


def detect_tempo(y: np.ndarray, sr: int = SAMPLE_RATE) -> float | None:
    """Beats per minute of mono (or ``(2, n)``) ``y``; None when fewer than 3 beats are found."""
    import librosa

    y = _mono(y)
    hop = 256
    env = librosa.onset.onset_strength(y=y, sr=sr, hop_length=hop)
    _, beats = librosa.beat.beat_track(onset_envelope=env, sr=sr, hop_length=hop)
    beats = np.asarray(beats)
    if len(beats) < 3:
        return None
    times = librosa.frames_to_time(beats, sr=sr, hop_length=hop)
    return float(60.0 * (len(times) - 1) / (times[-1] - times[0]))


def detect_key(y: np.ndarray, sr: int = SAMPLE_RATE) -> str | None:
    """``"A minor"``, ``"Eb major"`` ...: the best Krumhansl-Kessler profile; None for silence."""
    c = chroma(_mono(y), sr).sum(axis=1)
    if not np.any(c > 0):
        return None
    best, name = -2.0, None
    for profile, mode in ((_MAJOR, "major"), (_MINOR, "minor")):
        for r in range(12):
            score = float(np.corrcoef(np.roll(profile, r), c)[0, 1])
            if score > best:
                best, name = score, f"{ROOTS[r]} {mode}"
    return name


def build_description(text: str, key: str | None, tempo: float | None) -> str:
    """The seed's ``_build_description``: the user's hints joined with the detected key and tempo."""
    parts = [t for t in (text.strip(),) if t]
    if key:
        parts.append(f"in {key}")
    if tempo:
        parts.append(f"{tempo:.0f} bpm")
    return ", ".join(parts) or "music"


@dataclass
class WindowProfile:
    """What one generation window is conditioned on (times relative to the window start)."""

    seq: int
    offset: int  # first sample of the window in the stream (44.1 kHz)
    length: int  # samples of real input in the window (the last may be shorter)
    chords: list = field(default_factory=list)  # [(label, start_s)]
    melody: np.ndarray | None = None  # (53, frames) at 50 frames/s
    tempo: float | None = None
    key: str | None = None

    def description(self, text: str = "") -> str:
        return build_description(text, self.key, self.tempo)


def profile_window(seq: int, offset: int, harmonic: np.ndarray, sr: int = SAMPLE_RATE) -> WindowProfile:
    """Profile one window of the harmonic signal (everything but drums; tempo from the same)."""
    return WindowProfile(seq, offset, harmonic.shape[-1], detect_chords(harmonic, sr), melody_salience(harmonic, sr),
                         detect_tempo(harmonic, sr), detect_key(harmonic, sr))


class ProfileStage(Stage):
    """Pass-through stage that profiles each generation window of its input as it streams.

    ``window_s`` / ``stride_s``: the generation windows (JASCO: 10 s, stride
    ``10 - crossfade``).  Profiles appear in :attr:`profiles` (and :meth:`pop`)
    as windows complete; :meth:`flush` profiles the last, shorter window.
    """

    name = "profile"

    def __init__(self, window_s: float = 10.0, stride_s: float = 9.0, sample_rate: int = SAMPLE_RATE):
        if not 0 < stride_s <= window_s:
            raise ValueError("ProfileStage needs 0 < stride_s <= window_s")
        self.sample_rate = int(sample_rate)
        self.window = int(round(window_s * sample_rate))
        self.stride = int(round(stride_s * sample_rate))
        self.reset()

    def reset(self) -> None:
        self._buf = np.zeros((self.channels, 0), np.float32)
        self._buf_start = 0  # stream index of _buf[:, 0]
        self._seen = 0
        self._next = 0  # seq of the next window
        self.profiles: list[WindowProfile] = []
        self._popped = 0

    def _analyse_ready(self, final: bool) -> None:
        while True:
            start = self._next * self.stride
            end = start + self.window
            if self._seen < end and not (final and start < self._seen):
                break
            if final and self._next > 0 and (self._next - 1) * self.stride + self.window >= self._seen:
                break  # the previous window already reached the end of the stream
            a = start - self._buf_start
            seg = self._buf[:, a:a + min(end, self._seen) - start]
            self.profiles.append(profile_window(self._next, start, seg, self.sample_rate))
            self._next += 1
            keep_from = self._next * self.stride - self._buf_start
            self._buf = self._buf[:, keep_from:]
            self._buf_start += keep_from

    def _process(self, block: np.ndarray) -> np.ndarray:
        x = np.asarray(block, np.float32)
        self._buf = np.concatenate([self._buf, x], axis=1)
        self._seen += x.shape[1]
        self._analyse_ready(final=False)
        return x

    def flush(self) -> np.ndarray:
        if self._seen:
            self._analyse_ready(final=True)
        return np.zeros((self.channels, 0), np.float32)

    def pop(self) -> list[WindowProfile]:
        """The profiles completed since the last call."""
        out = self.profiles[self._popped:]
        self._popped = len(self.profiles)
        return out
