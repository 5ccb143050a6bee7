"""The room's viewer queue: what the character answers next, and what it lets go.

Pure and synchronous, with an injected clock, so every rule is testable:

- priority: paid messages (super chats, guard purchases), most valuable first,
  then paid gifts, then chat lines, then free gifts and entries (when enabled);
- a batch is one turn: one paid message, or every queued gift, or up to
  `merge_max` chat lines (oldest first), or the entries;
- dropped: duplicates of a queued or just-answered chat line, a viewer's lines
  faster than `viewer_interval_s`, unpaid items older than `max_age_s`, and the
  lowest-priority oldest unpaid item when the queue is full. Paid input is never
  dropped for age or rate, and displaces unpaid items when the queue is full.

Every item remembers who offered it (`sender`, opaque here). An offer refused on
arrival returns its reason; an item let go after it was taken in (pushed out by
newer input, or stale when its turn came) is reported through `on_dropped` too:
every drop passes there, so the room can tell whoever sent the event.
"""

from __future__ import annotations

import itertools
import re
import time
import unicodedata
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from ..config import QueuePolicy
from ..engine.events import ViewerEvent

DropReason = Literal["duplicate", "rate_limited", "stale", "queue_full", "ignored"]
BatchKind = Literal["paid_message", "gifts", "chat", "welcome"]

MAX_NAME_CHARS = 32
_PAID_MESSAGE, _PAID_GIFT, _CHAT, _LOW = 0, 1, 2, 3  # tiers: lower is answered first
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Batch:
    """One turn's worth of viewer input."""

    kind: BatchKind
    events: tuple[ViewerEvent, ...]


@dataclass(frozen=True, slots=True)
class Dropped:
    """A viewer event the queue let go of without an answer."""

    event: ViewerEvent
    reason: DropReason
    sender: object  # whoever offered it, as given to `offer`
    queued: bool  # True: it had been taken in, and was pushed out or went stale later


@dataclass(slots=True)
class _Item:
    event: ViewerEvent
    tier: int
    at: float
    seq: int
    key: str  # normalized text, for duplicates
    sender: object


class RoomQueue:
    def __init__(
        self,
        policy: QueuePolicy,
        clock: Callable[[], float] = time.monotonic,
        on_dropped: Callable[[Dropped], None] = lambda _dropped: None,
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._on_dropped = on_dropped
        self._items: list[_Item] = []
        self._seq = itertools.count()
        self._last_line_at: dict[str, float] = {}  # viewer -> when their last chat line was accepted
        self._answered: deque[tuple[str, float]] = deque(maxlen=64)  # recently taken chat lines
        self.dropped: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._items)

    def offer(self, event: ViewerEvent, sender: object = None) -> DropReason | None:
        """Queue an event; returns why it was refused, or None when it was taken in.

        Taking it in may push out an older item (reported through `on_dropped`)."""
        event = sanitize(event, self.policy.max_text_chars)
        tier = self._tier(event)
        if tier is None:
            return self._refuse(event, sender, "ignored")
        now = self._clock()
        key = normalize(event.text) if event.kind == "danmaku" else ""
        viewer = f"{event.platform}:{event.viewer_id or event.viewer_name}"
        if tier >= _CHAT:
            if key and self._is_duplicate(key, now):
                return self._refuse(event, sender, "duplicate")
            if event.kind == "danmaku" and _identifiable(event):
                last = self._last_line_at.get(viewer)
                if last is not None and now - last < self.policy.viewer_interval_s:
                    return self._refuse(event, sender, "rate_limited")
        item = _Item(event, tier, now, next(self._seq), key, sender)
        if len(self._items) >= self.policy.capacity and not self._make_room_for(item):
            return self._refuse(event, sender, "queue_full")
        self._items.append(item)
        if event.kind == "danmaku" and _identifiable(event):
            self._remember_line(viewer, now)
        return None

    def take(self) -> Batch | None:
        """The next turn's input (stale items are dropped first), or None when empty."""
        now = self._clock()
        fresh = [i for i in self._items if i.tier < _CHAT or now - i.at <= self.policy.max_age_s]
        stale = [i for i in self._items if i.tier >= _CHAT and now - i.at > self.policy.max_age_s]
        self._items = fresh
        for item in stale:
            self._let_go(item, "stale")
        if not fresh:
            return None
        tier = min(i.tier for i in fresh)
        candidates = sorted((i for i in fresh if i.tier == tier), key=lambda i: i.seq)
        if tier == _PAID_MESSAGE:
            chosen = [max(candidates, key=lambda i: (i.event.value, -i.seq))]
            kind: BatchKind = "paid_message"
        elif tier == _PAID_GIFT:
            chosen, kind = candidates[: self.policy.merge_max * 2], "gifts"
        elif tier == _CHAT:
            chosen, kind = candidates[: self.policy.merge_max], "chat"
        else:
            chosen = candidates[: self.policy.merge_max * 2]
            kind = "gifts" if all(i.event.kind == "gift" for i in chosen) else "welcome"
        taken = {id(i) for i in chosen}
        self._items = [i for i in fresh if id(i) not in taken]
        for item in chosen:
            if item.key:
                self._answered.append((item.key, now))
        return Batch(kind, tuple(i.event for i in chosen))

    # ------------------------------------------------------------ rules

    def _tier(self, event: ViewerEvent) -> int | None:
        match event.kind:
            case "superchat" | "guard":
                return _PAID_MESSAGE
            case "gift":
                if event.paid:
                    return _PAID_GIFT
                return _LOW if self.policy.thank_free_gifts else None
            case "danmaku":
                return _CHAT if event.text else None
            case "entry":
                return _LOW if self.policy.greet_entries else None
        return None

    def _is_duplicate(self, key: str, now: float) -> bool:
        if any(i.key == key for i in self._items):
            return True
        return any(k == key and now - at <= self.policy.max_age_s for k, at in self._answered)

    def _make_room_for(self, item: _Item) -> bool:
        """Evict the lowest-priority, oldest unpaid item (possibly `item` itself)."""
        unpaid = [i for i in self._items if i.tier >= _CHAT]
        if item.tier >= _CHAT:
            unpaid.append(item)
        if not unpaid:
            return False
        victim = max(unpaid, key=lambda i: (i.tier, -i.seq))
        if victim is item:
            return False
        self._items.remove(victim)
        self._let_go(victim, "queue_full")
        return True

    def _let_go(self, item: _Item, reason: DropReason) -> None:
        self.dropped[reason] += 1
        self._on_dropped(Dropped(item.event, reason, item.sender, queued=True))

    def _remember_line(self, viewer: str, now: float) -> None:
        if len(self._last_line_at) > 4096:  # forget viewers who went quiet
            horizon = now - self.policy.viewer_interval_s
            self._last_line_at = {v: t for v, t in self._last_line_at.items() if t >= horizon}
        self._last_line_at[viewer] = now

    def _refuse(self, event: ViewerEvent, sender: object, reason: DropReason) -> DropReason:
        self.dropped[reason] += 1
        self._on_dropped(Dropped(event, reason, sender, queued=False))
        return reason


def _identifiable(event: ViewerEvent) -> bool:
    """Guests on some platforms share one masked name ("用户***") and no id: no per-viewer limit then."""
    return bool(event.viewer_id) or "*" not in event.viewer_name


def normalize(text: str) -> str:
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text)).strip().casefold()


def clean(text: str, limit: int) -> str:
    """One line of printable text, at most `limit` characters."""
    text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in text)
    text = _SPACES.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def sanitize(event: ViewerEvent, max_text_chars: int) -> ViewerEvent:
    """Viewer input is untrusted: one line each, bounded, no control characters."""
    return replace(
        event,
        viewer_name=clean(event.viewer_name, MAX_NAME_CHARS).replace('"', "'") or "a viewer",
        viewer_id=clean(event.viewer_id, 64),
        text=clean(event.text, max_text_chars),
        gift_name=clean(event.gift_name, MAX_NAME_CHARS),
        platform=clean(event.platform, 32),
        count=max(1, min(int(event.count), 1_000_000)),
        value=max(0.0, min(float(event.value), 1e9)),
    )
