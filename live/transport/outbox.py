"""Outgoing events of one connection, in order, with barge-in priority.

`stop_play` jumps the queue and purges the stopped turn's frames that were
waiting, so no old audio reaches the client after it.
"""

from __future__ import annotations

import asyncio
from collections import deque

from ..engine.events import Event, PlaybackStopped, turn_of


class Outbox:
    def __init__(self) -> None:
        self._items: deque[Event] = deque()
        self._ready = asyncio.Event()
        self.closed = False

    def put(self, event: Event) -> None:
        if self.closed:
            return
        if isinstance(event, PlaybackStopped):
            self._items = deque(e for e in self._items if turn_of(e) != event.turn_id)
            self._items.appendleft(event)
        else:
            self._items.append(event)
        self._ready.set()

    async def get(self) -> Event:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()

    def __len__(self) -> int:
        return len(self._items)

    def close(self) -> None:
        self.closed = True
        self._items.clear()
