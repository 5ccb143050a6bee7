"""Platform feeds: the configured live-stream chat clients, each routed into a room.

One task per client, owned here and ended by `stop()`. Events reach the room's
queue while the room is open; while nobody has it open they are counted and
let go (there is nobody to answer them for).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from ..config import LiveSettings
from ..engine.events import ViewerEvent
from ..log import logger
from ..platforms import BilibiliLiveClient, PlatformClient
from .queue import Dropped
from .room import Rooms


@dataclass(slots=True)
class Feed:
    client: PlatformClient
    owner: str
    room: str
    task: asyncio.Task | None = None
    delivered: int = 0
    unrouted: int = 0  # events that came while the room was closed
    dropped: dict[str, int] = field(default_factory=dict)  # by reason, also those pushed out after delivery
    channel: ClassVar[str] = "feed"

    def viewer_dropped(self, dropped: Dropped) -> bool:
        """The platform cannot be told; the feed's counts (the plugin status) can."""
        self.dropped[dropped.reason] = self.dropped.get(dropped.reason, 0) + 1
        return True

    def describe(self) -> dict:
        return {
            "platform": self.client.name,
            "room": self.room,
            "delivered": self.delivered,
            "unrouted": self.unrouted,
            "dropped": dict(self.dropped),
            **self.client.status.to_dict(),
        }


class PlatformFeeds:
    def __init__(self, rooms: Rooms, settings: Callable[[], LiveSettings], default_owner: Callable[[], str]) -> None:
        self._rooms = rooms
        self._settings = settings
        self._default_owner = default_owner
        self.feeds: list[Feed] = []

    def start(self) -> None:
        if self.feeds:
            return
        bilibili = self._settings().bilibili
        if bilibili.room_id:
            overrides = {"api_base": bilibili.api_base, "main_api_base": bilibili.api_base} if bilibili.api_base else {}
            client = BilibiliLiveClient(bilibili.room_id, cookie=bilibili.cookie, **overrides)
            self._add(client, bilibili.room_owner or self._default_owner(), bilibili.live_room)

    def _add(self, client: PlatformClient, owner: str, room: str) -> None:
        feed = Feed(client, owner, room)
        feed.task = asyncio.create_task(client.run(lambda event: self._deliver(feed, event)), name=f"live-feed-{client.name}")
        self.feeds.append(feed)
        logger.info("live feed %s -> room %s/%s started", client.name, owner, room)

    def _deliver(self, feed: Feed, event: ViewerEvent) -> None:
        room = self._rooms.find(feed.owner, feed.room)
        if room is None:
            feed.unrouted += 1
            return
        if room.offer(event, feed) is None:
            feed.delivered += 1

    async def stop(self) -> None:
        feeds, self.feeds = self.feeds, []
        for feed in feeds:
            if feed.task is not None:
                feed.task.cancel()
        await asyncio.gather(*(f.task for f in feeds if f.task is not None), return_exceptions=True)

    def status(self) -> list[dict]:
        return [feed.describe() for feed in self.feeds]
