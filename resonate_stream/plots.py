"""Before/after waveform and spectrogram PNGs for the report (``--plots DIR``).

An :class:`OverviewAccumulator` streams over a recording keeping a bounded
overview (at most ``max_columns`` time columns: when full, neighbouring columns
are merged and the column width doubles), so a two-hour file costs the same
memory as a minute.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.audio import SAMPLE_RATE

N_FFT = 2048
N_BANDS = 160


class OverviewAccumulator:
    """Streaming min/max waveform envelope and log-frequency spectrogram."""

    def __init__(self, sample_rate: int = SAMPLE_RATE, max_columns: int = 1024, hop: int = N_FFT):
        self.sr = sample_rate
        self.max_columns = max_columns
        self.hop = hop
        self.frames_per_column = 1
        self._pending = np.zeros(0, dtype=np.float32)
        self._count_in_col = 0
        self._cur_min, self._cur_max = np.inf, -np.inf
        self._cur_spec = np.zeros(N_BANDS)
        self.mins: list[float] = []
        self.maxs: list[float] = []
        self.specs: list[np.ndarray] = []
        freqs = np.fft.rfftfreq(N_FFT, 1.0 / sample_rate)
        edges = np.geomspace(30.0, sample_rate / 2, N_BANDS + 1)
        self.band_of_bin = np.clip(np.searchsorted(edges, freqs) - 1, 0, N_BANDS - 1)
        self.bins_per_band = np.bincount(self.band_of_bin, minlength=N_BANDS)
        self.band_centres = np.sqrt(edges[:-1] * edges[1:])
        self.freqs = freqs
        self.band_edges = edges
        self.window = np.hanning(N_FFT).astype(np.float32)
        self.samples = 0

    def process(self, block: np.ndarray) -> None:
        mono = block.mean(axis=0) if block.ndim == 2 else block
        self.samples += mono.shape[0]
        self._pending = np.concatenate([self._pending, mono.astype(np.float32)])
        while self._pending.shape[0] >= N_FFT:
            frame = self._pending[:N_FFT]
            self._pending = self._pending[self.hop:]
            seg = frame[: self.hop]
            self._cur_min = min(self._cur_min, float(seg.min()))
            self._cur_max = max(self._cur_max, float(seg.max()))
            self._cur_spec += self._band_power(np.abs(np.fft.rfft(frame * self.window)) ** 2)
            self._count_in_col += 1
            if self._count_in_col == self.frames_per_column:
                self._close_column()

    def _band_power(self, power: np.ndarray) -> np.ndarray:
        """Mean power per log-frequency band; bands narrower than a bin are interpolated."""
        sums = np.bincount(self.band_of_bin, weights=power, minlength=N_BANDS)
        out = sums / np.maximum(self.bins_per_band, 1)
        empty = self.bins_per_band == 0
        out[empty] = np.interp(self.band_centres[empty], self.freqs, power)
        return out

    def _close_column(self) -> None:
        self.mins.append(self._cur_min)
        self.maxs.append(self._cur_max)
        self.specs.append(self._cur_spec / max(self._count_in_col, 1))
        self._cur_min, self._cur_max = np.inf, -np.inf
        self._cur_spec = np.zeros(N_BANDS)
        self._count_in_col = 0
        if len(self.mins) >= self.max_columns:
            m = len(self.mins) // 2 * 2
            self.mins = list(np.minimum(self.mins[0:m:2], self.mins[1:m:2])) + self.mins[m:]
            self.maxs = list(np.maximum(self.maxs[0:m:2], self.maxs[1:m:2])) + self.maxs[m:]
            specs = np.array(self.specs)
            self.specs = list((specs[0:m:2] + specs[1:m:2]) / 2) + list(specs[m:])
            self.frames_per_column *= 2

    def result(self) -> dict:
        if self._count_in_col:
            self._close_column()
        spec = np.array(self.specs).T if self.specs else np.zeros((N_BANDS, 1))
        return {"min": np.array(self.mins), "max": np.array(self.maxs),
                "spec_db": 10 * np.log10(spec + 1e-12), "duration_s": self.samples / self.sr,
                "band_edges": self.band_edges}


def overview_of_blocks(blocks) -> dict:
    acc = OverviewAccumulator()
    for b in blocks:
        acc.process(b)
    return acc.result()


def write_plots(source, master_path: Path, out_dir: Path) -> dict:
    """Write ``waveform.png`` and ``spectrogram.png`` (before above, after below)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from engine.io.decode import open_audio

    before = overview_of_blocks(source.blocks())
    with open_audio(Path(master_path)) as dec:
        after = overview_of_blocks(dec)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}

    fig, axes = plt.subplots(2, 1, figsize=(12, 5), sharex=True, sharey=True)
    for ax, ov, title in zip(axes, (before, after), ("before", "after")):
        t = np.linspace(0, ov["duration_s"], len(ov["min"]))
        ax.fill_between(t, ov["min"], ov["max"], color="#3a7bd5", linewidth=0)
        ax.set_title(f"Waveform {title}")
        ax.set_ylim(-1, 1)
        ax.set_ylabel("amplitude")
    axes[-1].set_xlabel("time (s)")
    fig.tight_layout()
    paths["plot_waveform"] = str(out_dir / "waveform.png")
    fig.savefig(paths["plot_waveform"], dpi=100)
    plt.close(fig)

    fig, axes = plt.subplots(2, 1, figsize=(12, 7), sharex=True)
    vmax = max(before["spec_db"].max(), after["spec_db"].max())
    for ax, ov, title in zip(axes, (before, after), ("before", "after")):
        edges = ov["band_edges"]
        mesh = ax.pcolormesh(np.linspace(0, ov["duration_s"], ov["spec_db"].shape[1] + 1), edges, ov["spec_db"],
                             vmin=vmax - 90, vmax=vmax, cmap="magma", shading="flat")
        ax.set_yscale("log")
        ax.set_ylim(30, edges[-1])
        ax.set_title(f"Spectrogram {title}")
        ax.set_ylabel("frequency (Hz)")
    axes[-1].set_xlabel("time (s)")
    fig.colorbar(mesh, ax=axes, label="dB")
    paths["plot_spectrogram"] = str(out_dir / "spectrogram.png")
    fig.savefig(paths["plot_spectrogram"], dpi=100)
    plt.close(fig)
    return paths
