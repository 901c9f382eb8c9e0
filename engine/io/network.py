"""Whether a model download server can be reached (the engine's only network probe).

Model loaders ask this before they let a library try a download, so an
offline machine fails at once with instructions instead of after a long
time-out.  Kept in ``engine/io`` with the engine's other I/O.
"""
from __future__ import annotations

import os
import socket

#: hosts the model libraries (Demucs, Hugging Face) download weights from
DOWNLOAD_HOSTS = (("huggingface.co", 443), ("dl.fbaipublicfiles.com", 443))


def download_reachable(timeout: float = 2.0, hosts=DOWNLOAD_HOSTS) -> bool:
    """Best-effort check that one of ``hosts`` accepts a TCP connection within ``timeout`` s.

    False when ``HF_HUB_OFFLINE`` is set; True behind a proxy (it cannot be
    probed cheaply: the loader then tries and reports its own error).
    """
    if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"):
        return False
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    for host, port in hosts:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return True
        except OSError:
            continue
    return False
