"""Progress for job events on stderr: tqdm bars on a terminal, plain lines otherwise.

On a terminal each stage gets a tqdm bar (seconds of audio).  When stderr is
not a terminal (a log file, a pipe, CI) no cursor movement is written: one
plain line per stage at 25 % steps (``progress: restore 50% (12.5/25.0 s)``),
or every 30 s of audio while the length is unknown.

Notes are short: what the separation did (separator, fallback, cached stems)
is folded into one ``note: separation: ...`` line; ``verbose`` prints every
note in full instead.

``compact`` (one of several files): a single transient bar for the whole file
on a terminal, labelled with the file; nothing off a terminal and no notes
(the caller prints one result line per file).
"""
from __future__ import annotations

import sys

from .events import Event, InfoEvent, ProgressEvent

#: plain-line mode: a line each time a stage passes another quarter
_PLAIN_STEPS = 4
#: plain-line mode without a known length: a line every this many seconds of audio
_PLAIN_UNKNOWN_EVERY_S = 30.0


def _is_separation_note(event: InfoEvent) -> bool:
    data = event.data or {}
    return data.get("kind") == "separator" or "cache" in data or "separator" in data


class ProgressPrinter:
    """An event sink: progress per stage and short notes, on ``stream`` (default stderr).

    ``quiet``: print nothing.  ``verbose``: every note in full.  ``plain``:
    plain lines instead of bars (default: when ``stream`` is not a terminal).
    """

    def __init__(self, quiet: bool = False, stream=None, verbose: bool = False, plain: bool | None = None,
                 compact: str | None = None):
        self.quiet = quiet
        self.verbose = verbose
        self.compact = compact
        self.stream = stream or sys.stderr
        if plain is None:
            isatty = getattr(self.stream, "isatty", None)
            plain = not (isatty and isatty())
        self.plain = plain
        self._bars: dict = {}
        self._plain_marks: dict[str, float] = {}
        self._separation: list[InfoEvent] = []

    def __call__(self, event: Event) -> None:
        if self.quiet:
            return
        if self.compact is not None:
            self._compact(event)
            return
        if isinstance(event, InfoEvent):
            if not self.verbose and _is_separation_note(event):
                self._separation.append(event)  # folded into one line before the first progress
            else:
                self._write(f"note: {event.message}")
        elif isinstance(event, ProgressEvent):
            self._flush_separation()
            if self.plain:
                self._plain(event)
            else:
                self._bar(event)

    def _compact(self, event: Event) -> None:
        """One bar per file: restore and master progress, half each."""
        if self.plain or not isinstance(event, ProgressEvent) or event.stage not in ("restore", "master"):
            return
        if not event.total:
            return
        from tqdm import tqdm

        bar = self._bars.get("file")
        if bar is None:
            bar = tqdm(total=100.0, desc=self.compact, file=self.stream, leave=False, dynamic_ncols=True,
                       bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]")
            self._bars["file"] = bar
        self._plain_marks[event.stage] = min(event.done, event.total) / event.total
        bar.n = 50.0 * (self._plain_marks.get("restore", 0.0) + self._plain_marks.get("master", 0.0))
        bar.refresh()

    def _flush_separation(self) -> None:
        if self._separation:
            self._write(f"note: {separation_summary(self._separation)}")
            self._separation = []

    def _plain(self, event: ProgressEvent) -> None:
        if event.total:
            step = min(_PLAIN_STEPS, int(event.done / event.total * _PLAIN_STEPS + 1e-9))
        else:
            step = int(event.done // _PLAIN_UNKNOWN_EVERY_S)
        if self._plain_marks.get(event.stage, -1) >= step:
            return
        self._plain_marks[event.stage] = step
        if event.total:
            pct = 100.0 * min(event.done, event.total) / event.total
            self._write(f"progress: {event.stage} {pct:.0f}% ({event.done:.1f}/{event.total:.1f} s)")
        else:
            self._write(f"progress: {event.stage} {event.done:.1f} s")

    def _bar(self, event: ProgressEvent) -> None:
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
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if not self.quiet and self.compact is None:
            self._flush_separation()
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()


def separation_summary(events: list[InfoEvent]) -> str:
    """One short line for the separation notes of a job (separator, fallback reason, cache)."""
    separator, fallback, cached = None, None, False
    for e in events:
        data = e.data or {}
        if data.get("cache") == "hit":
            cached = True
        elif data.get("kind") == "separator":
            fallback = e.message.split(" (", 1)[0].split(":", 1)[0].strip()
        elif "separator" in data:
            separator = data["separator"]
    text = f"separation: {separator or '?'}"
    if cached:
        return text + ", stems reused from the cache (separation skipped)"
    if fallback:
        return text + f" ({fallback}; --verbose for details)"
    return text
