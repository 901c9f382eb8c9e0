"""A bounded asyncio queue of received messages (one per job, one per download)."""
from __future__ import annotations

import asyncio
import collections
from typing import Any

from resonate_protocol import ConnectionLost


class Inbox:
    """Messages received but not yet consumed, at most ``high_water`` of them: when full,
    the connection's reader waits, so TCP pushes back on the server."""

    def __init__(self, high_water: int = 256):
        self.items: collections.deque = collections.deque()
        self.high_water = high_water
        self.changed = asyncio.Event()
        self.space = asyncio.Event()
        self.space.set()
        self.lost = False

    async def put(self, item: Any) -> None:
        while len(self.items) >= self.high_water and not self.lost:
            self.space.clear()
            await self.space.wait()
        self.items.append(item)
        self.changed.set()

    def put_nowait(self, item: Any) -> None:
        self.items.append(item)
        self.changed.set()

    def mark_lost(self) -> None:
        self.lost = True
        self.changed.set()
        self.space.set()

    async def get(self) -> Any:
        while not self.items:
            if self.lost:
                raise ConnectionLost("the connection to the server dropped; reconnect and resume")
            self.changed.clear()
            await self.changed.wait()
        item = self.items.popleft()
        if len(self.items) < self.high_water:
            self.space.set()
        return item
