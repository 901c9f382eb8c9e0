"""Progress bars (tqdm, on stderr) for job events."""
from __future__ import annotations

import sys

from .events import Event, Info, Progress


class ProgressPrinter:
    """An event sink that draws one tqdm bar per stage (seconds of audio)."""

    def __init__(self, quiet: bool = False, stream=None):
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self._bars: dict = {}

    def __call__(self, event: Event) -> None:
        if self.quiet:
            return
        if isinstance(event, Info):
            self._write(f"note: {event.message}")
        elif isinstance(event, Progress):
            from tqdm import tqdm

            bar = self._bars.get(event.stage)
            if bar is None:
                bar = tqdm(total=event.total, desc=f"{event.stage:>10}", unit="s", file=self.stream,
                           position=len(self._bars), leave=True, dynamic_ncols=True,
                           bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s [{elapsed}<{remaining}]"
                           if event.total else "{desc}: {n:.1f} s [{elapsed}, {rate_fmt}]")
                self._bars[event.stage] = bar
            if event.total and bar.total != event.total:
                bar.total = event.total
            bar.n = min(event.done, event.total) if event.total else event.done
            bar.refresh()

    def _write(self, text: str) -> None:
        if self._bars:
            from tqdm import tqdm

            tqdm.write(text, file=self.stream)
        else:
            print(text, file=self.stream)

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()
