"""The house's layers, checked on the source: imports only point down, and no package
imports a package above it (engine < actors < resonate_stream; resonate_protocol < clients).

Read with ``ast`` from every module (imports inside functions included), so a late
import cannot hide an edge.  The one allowed upward edge is the command dispatcher's
lazy import of ``clients.stream_cli`` (``resonate stream``).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: what each package may import of the project's packages and of a few I/O libraries
FORBIDDEN = {
    "engine": {"ray", "socket", "asyncio", "websockets", "resonate_stream", "resonate_protocol", "actors",
               "clients"},
    "resonate_protocol": {"engine", "resonate_stream", "actors", "clients", "ray", "socket", "asyncio",
                          "websockets", "torch"},
    "actors": {"resonate_stream", "resonate_protocol", "clients", "websockets", "asyncio"},
    "clients": {"engine", "resonate_stream", "actors", "ray", "torch"},
    "resonate_stream": {"clients"},
}
ALLOWED = {("resonate_stream/cli.py", "clients")}  # `resonate stream` dispatches to clients.stream_cli
#: the engine's network I/O lives in engine/io (model download probe), like its file I/O
ENGINE_IO = {("engine/io/network.py", "socket")}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_down(package):
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for name in imported_packages(path) & FORBIDDEN[package]:
            if (rel, name) not in ALLOWED | ENGINE_IO:
                bad.append(f"{rel} imports {name}")
    assert not bad, "\n".join(bad)


def test_the_checker_sees_late_imports(tmp_path):
    p = tmp_path / "m.py"
    p.write_text("def f():\n    import ray.util\n    from resonate_stream.cli import main\n")
    assert imported_packages(p) == {"ray", "resonate_stream"}
