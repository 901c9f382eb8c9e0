"""Install AudioCraft (MultiBandDiffusion, JASCO) into the project's own environment.

AudioCraft's own metadata pins ``torch==2.1.0``, ``numpy<2``, ``av==11`` and
an old xformers; none of that is needed (``../shared/vendor/audiocraft/README.md``
records what was measured).  So the install is three steps, none of which may
change torch:

1. its real runtime needs: :data:`RUNTIME_DEPS` (the same list as the
   project's ``audiocraft`` extra), installed with the running torch pinned
   so pip fails rather than replaces it;
2. AudioCraft itself ``--no-deps``: the wheel in ``../shared/vendor/audiocraft/``
   when there is one (machines that cannot reach GitHub), else the repository
   commit with JASCO (:data:`AUDIOCRAFT_GIT`, needs internet);
3. ``torchaudio`` ``--no-deps`` (:data:`TORCHAUDIO`).  The only build on PyPI
   for recent torch links the CUDA runtime; with a CPU torch its compiled
   libraries (``torchaudio/lib/*.so``) cannot load, so they are removed and
   torchaudio runs as pure Python (``functional.resample``, spectrograms:
   all MBD and JASCO need; ``load``/``save`` are not used).

flashy 0.0.2 also installs its own top-level ``tests`` package into
site-packages, which would shadow this project's ``tests``: its files are
removed (:func:`remove_stray_tests_package`).

Then it checks the result in a fresh interpreter: ``from audiocraft.models
import MultiBandDiffusion`` imports and torch is still the version it was.

Usage::

    python -m resonate_stream.audiocraft_install            # vendor wheel if found, else GitHub
    python -m resonate_stream.audiocraft_install --vendor DIR --check-only

Exit status 0 when AudioCraft imports afterwards; 1 otherwise (with the
reason on stderr); 2 when nothing could be installed because neither the
vendor wheel was found and a step failed (CI without ``../shared`` and
without internet: the tests that need AudioCraft then skip with a reason).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

#: AudioCraft's real runtime needs with this project's torch (mirrors pyproject's ``audiocraft`` extra)
RUNTIME_DEPS = (
    "einops", "omegaconf>=2.2", "hydra-core>=1.1", "hydra_colorlog", "julius", "sentencepiece",
    "transformers>=4.31", "huggingface_hub", "num2words", "flashy>=0.0.1", "spacy>=3.7",
    "librosa", "torchmetrics", "torchdiffeq", "demucs", "soundfile", "protobuf", "xformers==0.0.35",
)
#: torchaudio that works with torch 2.13 once its CUDA-only libraries are removed
TORCHAUDIO = "torchaudio==2.11.0"
#: the AudioCraft commit with JASCO (PyPI's 1.3.0 has no JASCO), for machines with internet
AUDIOCRAFT_GIT = ("audiocraft @ git+https://github.com/facebookresearch/audiocraft"
                  "@896ec7c47f5e5d1e5aa1e4b260c4405328bf009d")
#: environment variable naming the vendor folder (else ``../shared/vendor/audiocraft`` of the checkout)
VENDOR_ENV = "RESONATE_AUDIOCRAFT_VENDOR"

_CHECK = ("import torch, audiocraft; from audiocraft.models import MultiBandDiffusion; "
          "print(torch.__version__, audiocraft.__version__)")


class InstallFailed(RuntimeError):
    """A step of the install failed; ``status`` is the exit status to use."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status


def vendor_dirs() -> list[Path]:
    """Where the vendor folder is looked for, in order: ``$RESONATE_AUDIOCRAFT_VENDOR``, the
    checkout's ``../shared/vendor/audiocraft`` and ``shared/vendor/audiocraft``."""
    root = Path(__file__).resolve().parents[1]
    dirs = [Path(os.environ[VENDOR_ENV])] if os.environ.get(VENDOR_ENV) else []
    return dirs + [root.parent / "shared" / "vendor" / "audiocraft", root / "shared" / "vendor" / "audiocraft"]


def find_wheel(vendor: Path | None = None) -> Path | None:
    """The newest ``audiocraft-*.whl`` in ``vendor`` (or the first of :func:`vendor_dirs` that has one)."""
    for d in [vendor] if vendor is not None else vendor_dirs():
        wheels = sorted(Path(d).glob("audiocraft-*.whl")) if Path(d).is_dir() else []
        if wheels:
            return wheels[-1]
    return None


def audiocraft_source(vendor: Path | None = None) -> str:
    """What ``pip install --no-deps`` gets for AudioCraft: the vendor wheel, else :data:`AUDIOCRAFT_GIT`."""
    wheel = find_wheel(vendor)
    return str(wheel) if wheel is not None else AUDIOCRAFT_GIT


def torch_version(python: str = sys.executable) -> tuple[str, bool]:
    """``(torch.__version__, is_cpu_build)`` of ``python``'s environment."""
    out = _run([python, "-c", "import torch; print(torch.__version__); print(torch.version.cuda is None)"])
    version, cpu = out.split()[-2:]
    return version, cpu == "True"


def remove_cuda_libs(python: str = sys.executable) -> list[str]:
    """Delete torchaudio's compiled libraries (they link CUDA); returns the removed paths."""
    where = _run([python, "-c", "import importlib.util as u; print(u.find_spec('torchaudio').submodule_search_locations[0])"])
    lib = Path(where.strip().splitlines()[-1]) / "lib"
    removed = []
    for so in sorted(lib.glob("*.so")):
        so.unlink()
        removed.append(str(so))
    return removed


def remove_stray_tests_package(python: str = sys.executable, owner: str = "flashy") -> list[str]:
    """Delete the top-level ``tests`` package that ``owner`` (flashy 0.0.2) installs into
    site-packages: it shadows this project's ``tests`` (``from tests.audio_fixtures import ...``).
    Only the files ``owner``'s RECORD lists are removed; returns them."""
    code = ("import importlib.metadata as m, json; d = m.distribution(%r); "
            "print(json.dumps([str(d.locate_file(f)) for f in d.files if f.parts[0] == 'tests']))" % owner)
    try:
        files = json.loads(_run([python, "-c", code]).strip().splitlines()[-1])
    except (InstallFailed, IndexError, ValueError):
        return []
    removed = []
    for f in map(Path, files):
        if f.is_file():
            f.unlink()
            removed.append(str(f))
    for d in sorted({Path(f).parent for f in files}, key=lambda p: len(p.parts), reverse=True):
        for cache in d.glob("__pycache__"):
            shutil.rmtree(cache, ignore_errors=True)
        if d.is_dir() and not any(d.iterdir()):
            d.rmdir()
    return removed


def check(python: str = sys.executable) -> str:
    """Import ``MultiBandDiffusion`` in a fresh ``python``; returns ``"<torch> <audiocraft>"``."""
    return _run([python, "-c", _CHECK]).strip().splitlines()[-1]


def install(vendor: Path | None = None, python: str = sys.executable, pip_args: tuple = ()) -> str:
    """Run the three steps and :func:`check`; returns what :func:`check` returns.

    Raises :class:`InstallFailed` (torch changed, a pip step failed, the import fails).
    """
    torch_before, cpu = torch_version(python)
    pin = f"torch=={torch_before.split('+')[0]}"
    pip = [python, "-m", "pip", "install", "-q", *pip_args]
    source = audiocraft_source(vendor)
    if source == AUDIOCRAFT_GIT and vendor is not None:
        raise InstallFailed(f"no audiocraft-*.whl in {vendor}")
    steps = [
        ("runtime dependencies", pip + [pin, *RUNTIME_DEPS]),
        (f"AudioCraft from {source}", pip + ["--no-deps", source]),
        (TORCHAUDIO, pip + ["--no-deps", TORCHAUDIO]),
    ]
    for what, cmd in steps:
        print(f"installing {what} ...", file=sys.stderr)
        try:
            _run(cmd)
        except InstallFailed as e:
            # no vendor wheel and a failed step: taken as "no ../shared and no internet"
            raise InstallFailed(f"{what}: {e}", status=2 if source == AUDIOCRAFT_GIT else 1) from None
    stray = remove_stray_tests_package(python)
    if stray:
        print(f"removed flashy's top-level tests package ({len(stray)} files; it shadows ours)", file=sys.stderr)
    if cpu:
        removed = remove_cuda_libs(python)
        print(f"CPU torch: removed torchaudio's CUDA-only libraries {removed}", file=sys.stderr)
    torch_after, _ = torch_version(python)
    if torch_after != torch_before:
        raise InstallFailed(f"torch changed from {torch_before} to {torch_after}: reinstall torch=={torch_before}")
    return check(python)


def _run(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-8:]
        raise InstallFailed(f"`{' '.join(cmd[:6])} ...` failed:\n" + "\n".join(tail))
    return proc.stdout


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m resonate_stream.audiocraft_install", description=__doc__.split("\n")[0])
    ap.add_argument("--vendor", type=Path, help="folder with audiocraft-*.whl (default: ../shared/vendor/audiocraft)")
    ap.add_argument("--check-only", action="store_true", help="only check that AudioCraft imports")
    args = ap.parse_args(argv)
    try:
        result = check() if args.check_only else install(args.vendor)
    except InstallFailed as e:
        print(f"AudioCraft not installed: {e}", file=sys.stderr)
        return e.status
    print(f"AudioCraft ready (torch, audiocraft): {result}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
