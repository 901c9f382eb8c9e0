"""The actor of an in-order lane of the job graph (a stem's chain, the mix + preview master).

It holds state (filters, envelopes, noise profiles) and must see its input
strictly in order.  An actor is created empty (paying the engine's imports
once) and ``start``s a job's lane from its :class:`engine.graph.LaneSpec`; the
coordinator keeps idle actors warm between jobs, so a job does not wait for
new processes.  The coordinator checkpoints the state now and then
(``snapshot``: the pickled engine object, a fraction of a MB); after a crash it
replaces the actor, ``restore``s the last snapshot and replays the input since
(``prime``), or - when there is no snapshot - primes it with a short pre-roll
of recent input.
"""
from __future__ import annotations

import pickle

import ray


@ray.remote
class StageActor:
    def __init__(self):
        import engine.enhance.chains  # noqa: F401  (imports paid here, not by the first job)
        import engine.graph  # noqa: F401
        import engine.master.preview  # noqa: F401
        import engine.restore.chains  # noqa: F401

        self.stage = None

    def start(self, lane) -> None:
        """A fresh stage for a new job: ``lane.build()`` (an :class:`engine.graph.LaneSpec`)."""
        self.stage = lane.build()

    def process(self, block):
        return self.stage.process(block)

    def flush(self):
        return self.stage.flush()

    def prime(self, blocks: list) -> int:
        """Feed pre-roll inputs, discarding the output; returns how many."""
        for b in blocks:
            self.stage.process(b)
        return len(blocks)

    def snapshot(self) -> bytes:
        """The whole processing state, pickled."""
        return pickle.dumps(self.stage, protocol=pickle.HIGHEST_PROTOCOL)

    def restore(self, state: bytes) -> None:
        """Take over a state from :meth:`snapshot` (this job's own actors; never client data)."""
        self.stage = pickle.loads(state)

    def query(self, name: str):
        """A read-only question to the stage (e.g. the mixer's ``stem_gains_db``)."""
        return getattr(self.stage, name)()

    def node_id(self) -> str:
        return ray.get_runtime_context().get_node_id()
