"""The streaming-stage contract shared by every in-order (stateful) stage.

A :class:`Stage` consumes a stream of float32 ``(channels, samples)`` blocks
strictly in order and carries its own state (filter memories, envelopes, STFT
buffers) from one block to the next.

Contract (checked by the property tests in ``tests/``):

* ``process(block)`` returns exactly as many samples as it was given.  The
  output stream is the input stream delayed by ``latency`` samples: output
  sample ``n`` belongs to input sample ``n - latency`` (the first ``latency``
  output samples are the stage's warm-up, normally silence).
* ``flush()`` ends the stream: it returns exactly ``latency`` samples, the
  tail still held inside the stage, as if zeros had been fed.
* Chunk-size invariance: the concatenated output does not depend on how the
  input was cut into blocks (1-sample blocks included).

:class:`LatencyAligned` removes the delay so a stage's output lines up
sample-for-sample with its input; the pipeline wraps whole chains in it.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from .audio import CHANNELS, empty_block


class Stage:
    """Base class of a stateful, in-order streaming stage.

    Subclasses implement :meth:`_process` (and :meth:`_flush` when they have
    latency).  ``channels`` is the channel count of the blocks they accept.
    """

    #: delay in samples between input and output
    latency: int = 0
    channels: int = CHANNELS
    name: str = "stage"

    def process(self, block: np.ndarray) -> np.ndarray:
        """Consume ``block`` ``(channels, n)``; return ``(channels, n)``."""
        if block.shape[-1] == 0:
            return empty_block(block.shape[0])
        out = self._process(block)
        assert out.shape == block.shape, (self.name, out.shape, block.shape)
        return out

    def flush(self) -> np.ndarray:
        """End of stream: return the ``latency`` samples still held inside."""
        if self.latency == 0:
            return empty_block(self.channels)
        return self.process(np.zeros((self.channels, self.latency), dtype=np.float32))

    def reset(self) -> None:
        """Forget all state, ready for a new stream."""

    def _process(self, block: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


class Gain(Stage):
    """Static gain in dB (zero latency, stateless)."""

    name = "gain"

    def __init__(self, gain_db: float = 0.0, channels: int = CHANNELS):
        self.gain = np.float32(10.0 ** (gain_db / 20.0))
        self.channels = channels

    def _process(self, block: np.ndarray) -> np.ndarray:
        return (block * self.gain).astype(np.float32, copy=False)


class Delay(Stage):
    """Pure delay of ``samples`` samples: used to align parallel chains."""

    name = "delay"

    def __init__(self, samples: int, channels: int = CHANNELS):
        self.latency = int(samples)
        self.channels = channels
        self.reset()

    def reset(self) -> None:
        self._buf = np.zeros((self.channels, self.latency), dtype=np.float32)

    def _process(self, block: np.ndarray) -> np.ndarray:
        if self.latency == 0:
            return block.astype(np.float32, copy=True)
        joined = np.concatenate([self._buf, block], axis=1)
        n = block.shape[1]
        self._buf = joined[:, n:]
        return joined[:, :n]


class Chain(Stage):
    """Stages applied one after another; latency is the sum of theirs."""

    name = "chain"

    def __init__(self, stages: Sequence[Stage], name: str = "chain"):
        self.stages = list(stages)
        self.name = name
        self.channels = self.stages[0].channels if self.stages else CHANNELS
        self.latency = sum(s.latency for s in self.stages)

    def _process(self, block: np.ndarray) -> np.ndarray:
        for s in self.stages:
            block = s.process(block)
        return block

    def flush(self) -> np.ndarray:
        tail = empty_block(self.channels)
        for s in self.stages:
            # what is still in flight from earlier stages passes through this one
            tail = np.concatenate([s.process(tail), s.flush()], axis=1)
        return tail

    def reset(self) -> None:
        for s in self.stages:
            s.reset()


class LatencyAligned:
    """Wrap a stage so its output lines up with its input, sample for sample.

    ``process`` drops the first ``stage.latency`` output samples (so it may
    return fewer samples than given early on); ``flush`` returns the rest.
    Over a whole stream the output has exactly as many samples as the input.
    """

    def __init__(self, stage: Stage):
        self.stage = stage
        self.reset_alignment()

    @property
    def latency(self) -> int:
        return self.stage.latency

    def reset_alignment(self) -> None:
        self._to_drop = self.stage.latency

    def reset(self) -> None:
        self.stage.reset()
        self.reset_alignment()

    def process(self, block: np.ndarray) -> np.ndarray:
        out = self.stage.process(block)
        if self._to_drop:
            k = min(self._to_drop, out.shape[1])
            self._to_drop -= k
            out = out[:, k:]
        return out

    def flush(self) -> np.ndarray:
        out = self.stage.flush()
        if self._to_drop:
            k = min(self._to_drop, out.shape[1])
            self._to_drop -= k
            out = out[:, k:]
        return out


def run_in_blocks(stage: Stage | LatencyAligned, x: np.ndarray, sizes: Iterable[int] | None = None,
                  flush: bool = True) -> np.ndarray:
    """Feed ``x`` ``(channels, samples)`` through ``stage`` cut into ``sizes``.

    ``sizes`` cycles until ``x`` is consumed; ``None`` feeds it whole.  Returns
    the concatenated output (plus the flushed tail when ``flush``).
    """
    outs = []
    if sizes is None:
        outs.append(stage.process(x))
    else:
        sizes = list(sizes)
        pos, i = 0, 0
        while pos < x.shape[1]:
            n = max(1, int(sizes[i % len(sizes)]))
            outs.append(stage.process(x[:, pos:pos + n]))
            pos += n
            i += 1
    if flush:
        outs.append(stage.flush())
    return np.concatenate(outs, axis=1) if outs else empty_block(x.shape[0])
