"""The two streaming contracts of the engine: transforms (:class:`Stage`) and sinks.

**Stage** (every streaming transform).  A :class:`Stage` consumes a stream
of float32 ``(channels, samples)`` blocks strictly in order and carries its
own state (filter memories, envelopes, STFT buffers) from one block to the
next:

* ``process(block) -> block`` consumes one block and returns the output now
  ready;
* ``flush() -> block`` ends the stream and returns what is still held inside
  (as if zeros had been fed);
* ``reset()`` forgets all state, ready for a new stream: the same input then
  gives the same output again;
* ``latency`` (samples): output sample ``n + latency`` belongs to input sample
  ``n``; ``output_length(n)`` is the length of the whole output (``process``
  outputs plus ``flush``) of an ``n``-sample stream.

A plain (sample-synchronous) stage returns exactly as many samples as it was
given from ``process`` (the first ``latency`` output samples are its warm-up,
normally silence) and exactly ``latency`` samples from ``flush``:
``output_length(n) = n + latency``.  A re-timing stage
(:class:`LatencyAligned`, :class:`~engine.io.resample.StreamResampler`)
returns whatever is ready and documents its ``output_length``.  Every
stage is chunk-size invariant: the concatenated output does not depend on how
the input was cut into blocks (1-sample blocks included).
``tests/test_stage_contract.py`` discovers every subclass in ``engine`` and
checks all of this.

**Sink** (every streaming measurement: loudness and true-peak meters, the
audio analyzer, the separation-quality meter, the RT60 and band-limit
estimators).  A sink returns no audio:

* ``update(block)`` consumes one block (the separation-quality meter takes the
  mix block and the stems);
* ``reset()`` forgets everything measured;
* ``result()`` (or the readings its class documents, e.g.
  ``integrated_lufs()``, ``max_dbtp``, ``limits()``) reports the measurement
  so far, at any point of the stream.

Sinks are chunk-size invariant too: readings do not depend on block sizes.

:class:`LatencyAligned` removes the delay so a stage's output lines up
sample-for-sample with its input; the pipeline wraps whole chains in it.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from .audio import CHANNELS, db_to_gain, empty_block


class Stage:
    """Base class of a stateful, in-order streaming stage (see the module doc).

    Sample-synchronous subclasses implement :meth:`_process` (and
    :meth:`reset` when they hold state); the default :meth:`flush` feeds
    ``latency`` zeros.  Re-timing subclasses override :meth:`process`,
    :meth:`flush` and :meth:`output_length`.  ``channels`` is the channel
    count of the blocks they accept.
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

    def output_length(self, n: int) -> int:
        """Samples output (``process`` calls plus ``flush``) for an ``n``-sample stream."""
        return int(n) + self.latency

    def _process(self, block: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


class Gain(Stage):
    """Static gain in dB (zero latency, stateless)."""

    name = "gain"

    def __init__(self, gain_db: float = 0.0, channels: int = CHANNELS):
        self.gain = np.float32(db_to_gain(gain_db))
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


class LatencyAligned(Stage):
    """Wrap a stage so its output lines up with its input, sample for sample.

    A re-timing stage: ``process`` drops the first ``stage.latency`` output
    samples (so it may return fewer samples than given early on); ``flush``
    returns the rest.  Its own ``latency`` is 0 and over a whole stream the
    output has exactly as many samples as the input.
    """

    name = "latency_aligned"
    latency = 0

    def __init__(self, stage: Stage):
        self.stage = stage
        self.channels = stage.channels
        self._to_drop = stage.latency

    def reset(self) -> None:
        self.stage.reset()
        self._to_drop = self.stage.latency

    def output_length(self, n: int) -> int:
        return self.stage.output_length(n) - self.stage.latency

    def process(self, block: np.ndarray) -> np.ndarray:
        return self._drop_warm_up(self.stage.process(block))

    def flush(self) -> np.ndarray:
        return self._drop_warm_up(self.stage.flush())

    def _drop_warm_up(self, out: np.ndarray) -> np.ndarray:
        if self._to_drop:
            k = min(self._to_drop, out.shape[1])
            self._to_drop -= k
            out = out[:, k:]
        return out


def run_in_blocks(stage: Stage, x: np.ndarray, sizes: Iterable[int] | None = None,
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
