"""What the gateway hands to whatever actually runs a job (the *backend*).

The gateway owns sockets, uploads, spooling and resume; a backend owns the
audio processing.  The contract, in full:

``backend.start(job_id, spec, job_input, emit, cancel)`` is called in a worker
thread of its own (one per job) and returns when the job is over.

* ``spec`` (:class:`JobSpec`): the job's settings (``{"preset", "overrides"}``
  plain map as the client sent it), output options, ``out_dir``, a fresh
  folder where final files must be written (atomically: temp file + rename),
  and ``reference``: None, or the recording to match the mix to, a
  :class:`FileJobInput` or an ``encoded`` :class:`UploadJobInput` (its spool
  file carries the client's file name; call ``wait_file``).
* ``job_input``: a :class:`FileJobInput` (a server-side file, already confined to
  the allowed folders and checked to exist) or an :class:`UploadJobInput`
  (bytes arriving from the client: iterate it for raw pieces as they come, or
  call :meth:`UploadJobInput.wait_file` for the complete file).
* ``emit(event)`` with :mod:`resonate_stream.events` objects: ``ProgressEvent``
  (seconds of audio), ``InfoEvent``, ``AudioChunk`` (``seq`` 0, 1, 2 ... no gaps,
  ``offset`` contiguous, one ``sample_rate`` and channel count per job,
  float32 ``(channels, samples)``, finite) and finally ``Finished``.  ``emit``
  is cheap (it appends to a disk spool) and never blocks on the network.
  It raises :class:`JobCancelled` once the job was cancelled and a
  ``ResonateError`` (code ``backend_error``) if the events break the contract:
  let those propagate.
* ``cancel``: a ``threading.Event`` set when the client cancels (or the upload
  fails, or the server shuts down); poll it between blocks and return or
  raise :class:`JobCancelled`.
* Failure: raise a ``ResonateError`` subclass (its ``code`` and message go to
  the client).  Any other exception is reported as ``internal_error``.
"""
from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Protocol, Union, runtime_checkable

from engine.errors import ResonateError
from resonate_stream.events import Event

from resonate_protocol import ErrorCode, OutputOptions, ProtocolError, pcm_sample_format


class JobCancelled(ResonateError):
    """The job was cancelled (by the client, a failed upload, or server shutdown)."""

    code = ErrorCode.CANCELLED


class UploadTimeout(ResonateError):
    """No upload data arrived for longer than the server's idle timeout."""

    code = ErrorCode.UPLOAD_TIMEOUT


@dataclass(frozen=True)
class JobSpec:
    """Everything about a job except its input.

    ``settings``: plain map ``{"preset": str, "overrides": {...}}`` exactly as
    the client sent it (validated as JSON-like, not interpreted here).
    ``out_dir``: folder (created, empty) for the job's final files.
    """

    job_id: str
    settings: dict
    out_dir: Path
    send_stems: bool = False
    output: Optional[OutputOptions] = None  # None: the client left the file format to the preset
    reference: Optional["JobInput"] = None  # the recording to match the mix to (None: no matching)

    @property
    def preset(self) -> Optional[str]:
        return self.settings.get("preset")

    @property
    def overrides(self) -> dict:
        return dict(self.settings.get("overrides") or {})


@dataclass(frozen=True)
class FileJobInput:
    """Input file on the server (resolved, inside an allowed folder, exists)."""

    path: Path


class UploadJobInput:
    """Input bytes uploaded by the client, spooled to ``path`` on disk as they arrive.

    ``format`` is ``pcm_f32le`` / ``pcm_s16le`` (raw interleaved little-endian
    samples at ``sample_rate`` Hz with ``channels`` channels) or ``encoded``
    (bytes of an audio file called ``filename``).  Reader side (backend
    thread): ``for piece in upload`` yields ``bytes`` pieces (at most
    ``piece_bytes`` each, in order) as they arrive and ends after
    ``upload_end``; :meth:`wait_file` blocks until the upload is complete and
    returns the path of the whole file.  Both raise :class:`JobCancelled` on
    cancel, the upload's error if it failed, and :class:`UploadTimeout` if no
    byte arrives for ``idle_timeout_s`` seconds.  Memory stays flat: bytes live
    on disk, never in a queue.
    """

    def __init__(
        self,
        path: Path,
        *,
        format: str,
        sample_rate: Optional[int] = None,
        channels: Optional[int] = None,
        filename: Optional[str] = None,
        size: Optional[int] = None,
        cancel: Optional[threading.Event] = None,
        idle_timeout_s: float = 60.0,
        piece_bytes: int = 1 << 20,
    ):
        self.path = Path(path)
        self.format = format
        self.sample_rate = sample_rate
        self.channels = channels
        self.filename = filename
        self.size = size
        self.cancel = cancel or threading.Event()
        self.idle_timeout_s = float(idle_timeout_s)
        self.piece_bytes = int(piece_bytes)
        self._cond = threading.Condition()
        self._written = 0
        self._ended = False
        self._error: Optional[BaseException] = None
        self._last_data = time.monotonic()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)

    # ---- properties -------------------------------------------------------
    @property
    def is_pcm(self) -> bool:
        return self.pcm_format is not None

    @property
    def pcm_format(self) -> Optional[str]:
        """``"f32le"`` / ``"s16le"`` for PCM uploads (as ``PcmPushDecoder`` wants), else None."""
        return pcm_sample_format(self.format)

    @property
    def received_bytes(self) -> int:
        with self._cond:
            return self._written

    @property
    def ended(self) -> bool:
        with self._cond:
            return self._ended

    # ---- writer side (the gateway) ------------------------------------------
    def append(self, data: bytes) -> None:
        """Append ``data`` to the spool file (gateway side)."""
        with self._cond:
            if self._ended or self._error is not None:
                raise ProtocolError("upload already ended", code=ErrorCode.BAD_UPLOAD)
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        with self._cond:
            self._written += len(data)
            self._last_data = time.monotonic()
            self._cond.notify_all()

    def touch(self) -> None:
        """The client is still sending (another stream of the same job): restart the idle clock."""
        with self._cond:
            self._last_data = time.monotonic()

    def end(self) -> None:
        """Mark the upload complete (gateway side)."""
        with self._cond:
            self._ended = True
            self._close_fd()
            self._cond.notify_all()

    def abort(self, error: BaseException) -> None:
        """Fail every reader with ``error`` (gateway side: bad upload, cancel, shutdown)."""
        with self._cond:
            if self._error is None:
                self._error = error
            self._close_fd()
            self._cond.notify_all()

    def _close_fd(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def discard(self) -> None:
        """Delete the spool file (after the job is over)."""
        self.abort(JobCancelled("the upload was discarded"))
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    # ---- reader side (the backend thread) ----------------------------------
    def _wait(self, predicate: Callable[[], bool]) -> None:
        """Wait (holding ``_cond``) until ``predicate()``; raise on error/cancel/idle timeout."""
        while True:
            if self._error is not None:
                raise self._error
            if self.cancel.is_set():
                raise JobCancelled("the job was cancelled")
            if predicate():
                return
            idle = time.monotonic() - self._last_data
            if idle > self.idle_timeout_s:
                raise UploadTimeout(
                    f"no upload data for {idle:.0f} s (limit {self.idle_timeout_s:.0f} s); "
                    "the client stopped sending. Start the job again."
                )
            self._cond.wait(timeout=min(0.25, self.idle_timeout_s))

    def __iter__(self) -> Iterator[bytes]:
        pos = 0
        with open(self.path, "rb", buffering=0) as fh:
            while True:
                with self._cond:
                    self._wait(lambda: self._written > pos or self._ended)
                    available = self._written - pos
                    if available == 0:  # ended and fully read
                        return
                n = min(available, self.piece_bytes)
                piece = os.pread(fh.fileno(), n, pos)
                if len(piece) != n:  # pragma: no cover - spool file truncated underneath us
                    raise ResonateError("upload spool file was truncated", code=ErrorCode.INTERNAL_ERROR)
                pos += n
                yield piece

    def wait_file(self) -> Path:
        """Block until the whole upload arrived; return the complete file's path."""
        with self._cond:
            self._wait(lambda: self._ended)
        return self.path


JobInput = Union[FileJobInput, UploadJobInput]
Emit = Callable[[Event], None]


@runtime_checkable
class JobBackend(Protocol):
    """Runs one job; see the module docstring for the full contract."""

    def start(
        self,
        job_id: str,
        spec: JobSpec,
        job_input: JobInput,
        emit: Emit,
        cancel: threading.Event,
    ) -> None: ...


class RunnerBackend:
    """Backend that runs jobs through ``resonate_stream.runner.run_job``.

    ``run_job(source, settings, outputs, *, emit, cancel, pipeline_factory)``
    gets:

    * ``source``: ``resonate_stream.sources.FileSource`` for path inputs and
      ``encoded`` uploads (the complete uploaded file, after ``upload_end``),
      or a ``BlockSource`` for PCM uploads whose blocks come from
      ``engine.io.PcmPushDecoder`` fed with the upload's bytes as they arrive
      (so processing starts before the upload ends);
    * ``settings``: ``Settings.from_preset(preset, overrides)``, where the
      job's ``options.output`` (if the client sent it) overrides
      ``export.format`` / ``bit_depth`` / ``sample_rate``;
    * ``outputs``: ``OutputSpec`` inside ``spec.out_dir``: the master
      ``<name>.restored.<format>``, ``report.json``, stem files under
      ``stems/`` when ``stem_files`` is true or the job asked for stems
      (``send_stems``: a client that listens to the stems can also download
      them), ``stream_stems`` = ``send_stems``;
    * ``emit``, ``cancel`` unchanged; ``pipeline_factory`` as given here
      (None: the runner's in-process pipeline; pass the Ray pipeline factory
      for ``resonate serve`` on a cluster);
    * ``reference``: the job's reference recording (:meth:`reference_for`), when it has one.

    ``run_job`` and ``make_settings`` can be replaced (tests, other runners).
    """

    def __init__(
        self,
        pipeline_factory: Optional[Callable[..., object]] = None,
        *,
        stem_files: bool = False,
        block_seconds: float = 1.0,
        run_job: Optional[Callable[..., object]] = None,
        make_settings: Optional[Callable[[JobSpec], object]] = None,
        cache: Optional[object] = None,
    ):
        self.pipeline_factory = pipeline_factory
        self.cache = cache  # resonate_stream.cache.StemCache: separated stems reused across jobs
        self.stem_files = stem_files
        self.block_seconds = float(block_seconds)
        self._run_job = run_job
        self._make_settings = make_settings

    def settings_for(self, spec: JobSpec) -> object:
        """The runner's ``Settings`` for ``spec`` (raises ``SettingsError``)."""
        if self._make_settings is not None:
            return self._make_settings(spec)
        from resonate_stream.settings import DEFAULT_PRESET, Settings, deep_merge

        overrides = spec.overrides
        if spec.output is not None:  # the output options are applied to settings.export, the one format channel
            export = {"format": spec.output.format, "bit_depth": spec.output.bit_depth}
            if spec.output.sample_rate is not None:
                export["sample_rate"] = spec.output.sample_rate
            overrides = deep_merge(overrides, {"export": export})
        return Settings.from_preset(spec.preset or DEFAULT_PRESET, overrides)

    def source_for(self, job_input: JobInput) -> object:
        """``FileSource`` / ``BlockSource`` for the runner (blocks 44.1 kHz stereo float32)."""
        from resonate_stream.sources import BlockSource, FileSource, SourceInfo

        if isinstance(job_input, FileJobInput):
            return FileSource(job_input.path, block_seconds=self.block_seconds)
        if not job_input.is_pcm:
            path = job_input.wait_file()
            try:
                fs = FileSource(path, block_seconds=self.block_seconds)
            except ResonateError as exc:  # name the file as the client knows it, not the spool's name
                if job_input.filename and path.name in exc.message:
                    exc.args = (exc.message.replace(path.name, job_input.filename),)
                raise
            if job_input.filename:
                fs.info.name = job_input.filename
            return fs
        from engine.io import PcmPushDecoder

        decoder = PcmPushDecoder(job_input.sample_rate, job_input.channels, job_input.pcm_format,
                                 block_seconds=self.block_seconds)
        width = 4 if job_input.pcm_format == "f32le" else 2
        duration = None
        if job_input.size is not None:
            duration = job_input.size / (width * int(job_input.channels)) / int(job_input.sample_rate)

        def blocks() -> Iterator:
            for piece in job_input:
                yield from decoder.push(piece)
            yield from decoder.finish()

        info = SourceInfo(name=job_input.filename or "upload", sample_rate=job_input.sample_rate,
                          channels=job_input.channels, duration_s=duration, format=job_input.format)
        return BlockSource(blocks(), info)

    def outputs_for(self, spec: JobSpec, settings: object, src: object) -> object:
        from resonate_stream.runner import OutputSpec

        fmt = getattr(getattr(settings, "export", None), "format", None) or (spec.output or OutputOptions()).format
        name = getattr(getattr(src, "info", None), "name", None) or "upload"
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", Path(name).stem)[:100].strip("._") or "upload"
        return OutputSpec(
            master=spec.out_dir / f"{stem}.restored.{fmt}",
            stems_dir=spec.out_dir / "stems" if (self.stem_files or spec.send_stems) else None,
            report=spec.out_dir / "report.json",
            stream_stems=spec.send_stems,
        )

    @staticmethod
    def reference_for(spec: JobSpec) -> Optional[Path]:
        """The reference recording's file (an upload: once complete), or None; ``bad_reference``
        when it cannot be read as audio (before any work on the input)."""
        ref = spec.reference
        if ref is None:
            return None
        path = ref.path if isinstance(ref, FileJobInput) else ref.wait_file()
        from resonate_stream.runner import check_reference

        check_reference(path)
        return Path(path)

    def start(self, job_id: str, spec: JobSpec, job_input: JobInput, emit: Emit, cancel: threading.Event) -> None:
        run_job = self._run_job
        if run_job is None:
            from resonate_stream.runner import run_job  # late: the runner imports the engine
        from resonate_stream.runner import check_outputs

        settings = self.settings_for(spec)
        reference = self.reference_for(spec)
        src = self.source_for(job_input)
        outputs = self.outputs_for(spec, settings, src)
        check_outputs(outputs)  # creates the stems folder; fails early when nothing can be written
        kwargs: dict = {"cache": self.cache} if self.cache is not None else {}
        if reference is not None:
            kwargs["reference"] = reference  # measured by run_job before the stream starts
        run_job(src, settings, outputs, emit=emit, cancel=cancel, pipeline_factory=self.pipeline_factory, **kwargs)
