"""Actors for the in-order stages: one per stem, and the mix + preview master.

They hold state (filters, envelopes, noise profiles) and must see their input
strictly in order.  An actor is created empty (paying the engine's imports
once) and ``start``s a job's stages; the coordinator keeps idle actors warm
between jobs, so a job does not wait for new processes.  The coordinator
checkpoints the state now and then (``snapshot``: the pickled engine objects,
a fraction of a MB); after a crash it replaces the actor, ``restore``s the
last snapshot and replays the input since (``prime``), or - when there is no
snapshot - primes it with a short pre-roll of recent input.
"""
from __future__ import annotations

import pickle

import ray


@ray.remote
class StemActor:
    def __init__(self):
        import engine.enhance.chains  # noqa: F401  (imports paid here, not by the first job)
        import engine.pipeline  # noqa: F401
        import engine.restore.chains  # noqa: F401

        self.proc = None

    def start(self, stem: str, cfg, common_latency: int) -> None:
        """Fresh stages for one stem of a new job (``engine.pipeline.StemProcessor``)."""
        from engine.pipeline import StemProcessor

        self.proc = StemProcessor(stem, cfg, common_latency)

    def process(self, block):
        return self.proc.process(block)

    def flush(self):
        return self.proc.flush()

    def prime(self, blocks: list) -> int:
        """Feed pre-roll blocks, discarding the output; returns samples fed."""
        n = 0
        for b in blocks:
            self.proc.process(b)
            n += b.shape[1]
        return n

    def snapshot(self) -> bytes:
        """The whole processing state, pickled."""
        return pickle.dumps(self.proc, protocol=pickle.HIGHEST_PROTOCOL)

    def restore(self, state: bytes) -> None:
        """Take over a state from :meth:`snapshot` (this job's own actors; never client data)."""
        self.proc = pickle.loads(state)

    def node_id(self) -> str:
        return ray.get_runtime_context().get_node_id()


@ray.remote
class MixMasterActor:
    def __init__(self):
        import engine.master.preview  # noqa: F401
        import engine.mix  # noqa: F401

        self.mm = None

    def start(self, cfg) -> None:
        """Fresh mixer + preview master for a new job (``engine.pipeline.MixMaster``)."""
        from engine.pipeline import MixMaster

        self.mm = MixMaster(cfg)

    def process(self, vocals, drums, bass, other):
        return self.mm.process({"vocals": vocals, "drums": drums, "bass": bass, "other": other})

    def flush(self):
        return self.mm.flush()

    def prime(self, inputs: list) -> int:
        n = 0
        for stems in inputs:
            self.mm.process(dict(zip(("vocals", "drums", "bass", "other"), stems)))
            n += stems[0].shape[1]
        return n

    def snapshot(self) -> bytes:
        return pickle.dumps(self.mm, protocol=pickle.HIGHEST_PROTOCOL)

    def restore(self, state: bytes) -> None:
        self.mm = pickle.loads(state)

    def stem_gains_db(self) -> dict:
        return self.mm.stem_gains_db()

    def node_id(self) -> str:
        return ray.get_runtime_context().get_node_id()
