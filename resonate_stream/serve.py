"""``resonate serve``: the websocket gateway over a local or joined Ray cluster.

With no ``--address`` a local Ray instance is started (the embedded default);
with one, the gateway joins that cluster and its separator actors are placed
on the nodes that offer the device.  ``--in-process`` runs jobs without Ray.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

from .settings import SeparationSettings

WEB_ROOT = Path(__file__).with_name("web")


def default_output_dir() -> Path:
    """Where finished jobs' files go: ``$RESONATE_OUTPUT_DIR`` or ``~/.local/share/resonate/jobs``."""
    env = os.environ.get("RESONATE_OUTPUT_DIR")
    return Path(env) if env else Path.home() / ".local" / "share" / "resonate" / "jobs"


class SeparatorPools:
    """One shared :class:`SeparatorPool` per separation model, and one pool of warm stage
    actors (thread-safe).

    Jobs whose separation differs only in window settings (``quality``,
    ``segment_s``, ``overlap``, ``shifts``: another preset) share the model's
    pool (the settings travel with each window).  A new model gets a new pool,
    built outside the lock: jobs on the pools that exist never wait for it,
    and one that cannot fit on the cluster fails at once (``ray_unavailable``
    with what to do) instead of waiting for resources the other pools hold.
    """

    def __init__(self, n_actors: int | None = None, warm_stage_actors: bool = True):
        self.n_actors = n_actors
        self._pools: dict = {}
        self._building: dict = {}  # pool key -> threading.Event set once its build ended
        self._lock = threading.Lock()
        self._stage_actors = None
        self._polish: dict = {}
        self._generators: dict = {}
        self._warm = warm_stage_actors

    def stage_actors(self):
        """Stem and mix/master actors kept warm between jobs (created on first use)."""
        from .ray_pipeline import StageActorPool

        with self._lock:
            if self._stage_actors is None and self._warm:
                self._stage_actors = StageActorPool(jobs=1)
            return self._stage_actors

    @property
    def pools(self) -> dict:
        """The separator pools started so far (pool key -> pool)."""
        with self._lock:
            return dict(self._pools)

    def get(self, separation: SeparationSettings):
        """The pool for ``separation``'s model (started on first use; concurrent callers for the
        same new model wait for one build, without holding the lock)."""
        from .ray_pipeline import SeparatorPool, pool_key

        key = pool_key(separation)
        while True:
            with self._lock:
                pool = self._pools.get(key)
                if pool is not None:
                    return pool
                building = self._building.get(key)
                if building is None:
                    building = self._building[key] = threading.Event()
                    break
            building.wait()  # another job builds this pool: wait for it, then look again (it may have failed)
        try:
            pool = SeparatorPool(separation, n_actors=self.n_actors)
            with self._lock:
                self._pools[key] = pool
            return pool
        finally:
            with self._lock:
                self._building.pop(key, None)
            building.set()

    def polish(self, polish):
        """The shared MBD polish pool for ``polish`` (a PolishConfig), None when polish is off."""
        if not polish.enabled:
            return None
        from .polish_pool import PolishPool

        key = tuple(sorted(polish.to_dict().items()))
        with self._lock:
            pool = self._polish.get(key)
        if pool is None:  # built outside the lock: it waits for its actors, other jobs must not
            pool = PolishPool(polish)  # sized to the cluster's devices; fails fast when it cannot fit
            with self._lock:
                pool = self._polish.setdefault(key, pool)
        return pool

    def generator(self, generate):
        """The shared JASCO generator pool for ``generate`` (a GenerateConfig), None when not generating."""
        if not generate.enabled:
            return None
        from .generator_pool import GeneratorPool

        key = tuple(sorted((k, v) for k, v in generate.to_dict().items() if k not in ("mode", "blend")))
        with self._lock:
            pool = self._generators.get(key)
        if pool is None:  # built outside the lock, as the polish pool
            pool = GeneratorPool(generate)
            with self._lock:
                pool = self._generators.setdefault(key, pool)
        return pool

    def factory(self, settings, cfg):
        """A ``pipeline_factory`` for the runner: the Ray pipeline on the shared pools."""
        from .ray_pipeline import RayPipeline

        return RayPipeline(self.get(settings.separation), cfg, stage_actors=self.stage_actors(),
                           polish_pool=self.polish(settings.polish), separation=settings.separation,
                           generator_pool=self.generator(settings.generate))


def build_server(host: str = "127.0.0.1", port: int = 8765, *, address: str | None = None,
                 token: str | None = None, allow: list[Path] | None = None, workers: int | None = None,
                 local_ray: bool = True, output_dir: Path | None = None, use_cache: bool = True,
                 cache_dir: Path | None = None, **kwargs):
    """The configured :class:`GatewayServer` (Ray started or joined when ``local_ray``).

    With ``use_cache`` jobs on server-side or uploaded files reuse separated
    stems from the stem cache (``cache_dir``, default ``$RESONATE_CACHE_DIR`` or
    ``~/.cache/resonate``), on the Ray path as in ``resonate process``.
    """
    from .cache import StemCache
    from .gateway.jobs import RunnerBackend
    from .gateway.server import GatewayServer

    factory = None
    if local_ray:
        from .ray_pipeline import init_ray

        init_ray(address)
        pools = SeparatorPools(workers)
        # start the default separator pool and the stage actors now, so the first job is warm too
        from .settings import Settings

        pools.get(Settings.from_preset().separation)
        pools.stage_actors()
        factory = pools.factory
    out = Path(output_dir) if output_dir else default_output_dir()
    out.mkdir(parents=True, exist_ok=True)
    kwargs.setdefault("presets", preset_catalogue())
    backend = RunnerBackend(pipeline_factory=factory, cache=StemCache(cache_dir) if use_cache else None)
    return GatewayServer(host, port, token=token, backend=backend,
                         allowed_roots=allow or [], web_root=WEB_ROOT if WEB_ROOT.is_dir() else None,
                         output_dir=out, **kwargs)


def preset_catalogue() -> dict:
    """What ``GET /presets`` serves: ``{"default": name, "presets": {name: full settings}}``."""
    from .presets import DEFAULT_PRESET, preset_names
    from .settings import Settings

    return {"default": DEFAULT_PRESET, "presets": {n: Settings.from_preset(n).to_dict() for n in preset_names()}}


def serve_forever(host: str = "127.0.0.1", port: int = 8765, *, address: str | None = None,
                  token: str | None = None, allow: list[Path] | None = None, workers: int | None = None,
                  local_ray: bool = True) -> int:
    """Serve until SIGTERM or SIGINT, then stop cleanly: one line, exit status 0.

    The signal handlers are installed after Ray started: Ray's own SIGTERM
    handler (a native stack dump, then exit status 15) is replaced, so a
    service manager's stop is an ordinary shutdown (jobs cancelled,
    connections closed, Ray shut down).
    """
    import asyncio
    import signal

    server = build_server(host, port, address=address, token=token, allow=allow, workers=workers,
                          local_ray=local_ray)
    runner = "in-process" if not local_ray else (f"Ray cluster at {address}" if address else "local Ray")
    received: list[int] = []

    async def run() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        def on_signal(sig: int) -> None:
            received.append(sig)
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal, sig)
        await server.start()
        print(f"Resonate gateway: {server.url}  (web page: {server.http_url}/, jobs on {runner}; "
              f"results in {server._output_arg})", flush=True)
        try:
            await stop.wait()
        finally:
            await server.close()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:  # a SIGINT before the handlers were installed
        received.append(signal.SIGINT)
    if local_ray:
        import ray

        ray.shutdown()
    why = signal.Signals(received[0]).name if received else "done"
    print(f"Resonate gateway stopped ({why})", flush=True)
    return 0
