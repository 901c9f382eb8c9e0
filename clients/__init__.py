"""Clients of the Resonate gateway; they depend only on the documented protocol.

``clients.python_client``: asyncio client library (:class:`ResonateClient`,
:func:`stream_to_file`).
"""
from __future__ import annotations


def __getattr__(name: str):
    if name in ("ResonateClient", "stream_to_file", "AudioBlock", "ConnectionLost", "StreamResult", "process_file"):
        from . import python_client

        return getattr(python_client, name)
    raise AttributeError(name)
