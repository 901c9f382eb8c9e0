"""Keep C libraries' stderr chatter (libmpg123 inside libsndfile) off the terminal.

libmpg123 prints resync notes and decode errors straight to file descriptor 2
("Note: Illegal Audio-MPEG-Header ...", "[src/libmpg123/layer3.c...] error:
..."), which no Python setting can silence and libsndfile gives no flag for.
:func:`captured_c_stderr` points descriptor 2 at a temporary file for the
duration of one call and hands what was written to the ``engine.io`` logger
at DEBUG level (visible with ``resonate --verbose``), so a damaged MP3 ends in
one error line, not hundreds of library notes.

Descriptor 2 is process-wide: captures are serialised by a lock, so two
threads never interleave their redirections; Python code writing to
``sys.stderr`` meanwhile (another thread) lands in the capture too, and is
logged with it rather than lost.
"""
from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
from contextlib import contextmanager
from typing import Iterator

log = logging.getLogger("engine.io")

_LOCK = threading.Lock()
#: at most this many characters of captured chatter are logged per capture
_MAX_LOGGED_CHARS = 4000


@contextmanager
def captured_c_stderr(what: str) -> Iterator[None]:
    """Run the ``with`` body with descriptor 2 redirected; log what it wrote (DEBUG).

    ``what``: names the operation in the log line (e.g. the file name).
    """
    with _LOCK:
        try:
            sys.stderr.flush()
        except (AttributeError, ValueError):
            pass
        try:
            saved = os.dup(2)
        except OSError:  # no descriptor 2 (a daemon): nothing to protect
            yield
            return
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                if sink.tell() or os.fstat(sink.fileno()).st_size:
                    sink.seek(0)
                    text = sink.read(_MAX_LOGGED_CHARS).decode("utf-8", "replace").rstrip()
                    if text:
                        log.debug("%s: decoder messages:\n%s", what, text)
