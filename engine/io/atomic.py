"""Write-to-temp-then-rename, so a finished file appears whole or not at all."""
from __future__ import annotations

import os
import secrets
from pathlib import Path


class AtomicOutput:
    """A temporary file beside ``final_path`` that becomes it on :meth:`commit`.

    The temporary file (``.<name>.<random>.part`` in the same folder, so the
    rename never crosses file systems) is created empty at construction with
    the usual permissions (0666 minus the umask).  :meth:`commit` fsyncs it,
    ``os.replace``-s it over ``final_path`` (atomic on POSIX and Windows) and
    fsyncs the folder; :meth:`discard` deletes it.  Until commit, an existing
    file at ``final_path`` is untouched.
    """

    def __init__(self, final_path: str | os.PathLike):
        self.final_path = Path(final_path)
        folder = self.final_path.parent
        for _ in range(100):
            candidate = folder / f".{self.final_path.name}.{secrets.token_hex(4)}.part"
            try:
                fd = os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                continue
            os.close(fd)
            self.temp_path = candidate
            break
        else:  # pragma: no cover - 100 random collisions
            raise FileExistsError(f"cannot create a temporary file beside {self.final_path}")
        self.done = False

    def commit(self) -> Path:
        """Make the temporary file the final file (durably); return the final path."""
        fd = os.open(self.temp_path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(self.temp_path, self.final_path)
        self.done = True
        fsync_path(self.final_path.parent)
        return self.final_path

    def discard(self) -> None:
        """Delete the temporary file (idempotent); the final path is left as it was."""
        if not self.done:
            self.done = True
            try:
                os.unlink(self.temp_path)
            except FileNotFoundError:
                pass


def fsync_path(folder: Path) -> None:
    """Flush a file or folder to disk, e.g. to persist a rename (POSIX); best
    effort: silently skipped where it cannot be opened or synced."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
