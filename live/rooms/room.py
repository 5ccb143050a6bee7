"""A live room: one session shared by many connections, fed by a viewer queue.

The room owns its `LiveSession`, its `RoomQueue` and the dispatcher task that
turns queued viewer input into turns, one at a time, only when the room is
quiet: no turn running, nobody speaking, the last answer played out. Every
session event is broadcast to every member; replies to one member's own frame
go to that member only. `Rooms` owns every room and closes the ones nobody has
joined for `linger_s`.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Literal, Protocol, runtime_checkable

from ..engine.events import (
    AgentState,
    AppendAudio,
    Command,
    ErrorRaised,
    Event,
    Interrupt,
    OutputConfigured,
    Ping,
    Pong,
    ReportPlayback,
    RoomMembership,
    RoomUpdated,
    SendText,
    SessionStarted,
    SetReceiveAudio,
    SpeechDetected,
    StartSpeaking,
    StateChanged,
    SubmitUtterance,
    TurnEnded,
    UserTranscribed,
    ViewerDropped,
    ViewerEvent,
)
from ..engine.session import LiveSession
from ..errors import AuthError, ErrorCode
from ..log import logger
from .prompt import prompt_for
from .queue import DropReason, Dropped, QueuePolicy, RoomQueue


Role = Literal["streamer", "bridge", "listener"]
ROLES: tuple[Role, ...] = ("streamer", "bridge", "listener")
ROOM_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
ANSWER_GAP_S = 0.4  # a breath between one answer's audio and the next viewer answer
ROOM_NAMESPACE = uuid.UUID("0c4f3f43-7d8e-4a36-9f0e-6c6976652d72")
RECHECK_S = 1.0  # while the streamer speaks, look again at least this often


@dataclass(frozen=True, slots=True)
class RoomKey:
    owner: str
    name: str

    @property
    def default_conversation_id(self) -> str:
        """Each room keeps its own conversation, stable across reconnects and restarts."""
        return str(uuid.uuid5(ROOM_NAMESPACE, f"{self.owner}/{self.name}"))


class Room:
    def __init__(
        self,
        key: RoomKey,
        session_factory: Callable[[Callable[[Event], None]], LiveSession],
        policy: QueuePolicy,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.key = key
        self.queue = RoomQueue(policy, clock, on_dropped=self._report_dropped)
        self.members: dict[str, RoomMember] = {}
        self.empty_since: float | None = clock()
        self._clock = clock
        self._started: SessionStarted | None = None
        self._changed = asyncio.Event()  # the session's state moved: re-check whether the room is quiet
        self._queued = asyncio.Event()
        self._viewer_turn: str | None = None  # the turn answering viewers, if one runs
        self._snapshot_due = False
        self.session = session_factory(self._broadcast)
        self._dispatcher: asyncio.Task | None = None

    def __repr__(self) -> str:
        return f"Room({self.key.owner}/{self.key.name}, members={len(self.members)}, queue={len(self.queue)})"

    @property
    def conversation_id(self) -> str:
        return self.session.conversation.conversation_id

    @property
    def state(self) -> AgentState:
        return self.session.state

    def open(self) -> None:
        self.session.open()
        self._dispatcher = asyncio.create_task(self._dispatch_loop(), name=f"live-room-{self.key.name}")

    async def close(self) -> None:
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            await asyncio.gather(self._dispatcher, return_exceptions=True)
            self._dispatcher = None
        await self.session.close()

    # ------------------------------------------------------------ members

    def join(self, member: RoomMember) -> None:
        self.members[member.id] = member
        self.empty_since = None
        assert self._started is not None, "the room's session is open before anyone joins"
        member.deliver(replace(self._started, session_id=member.id, room=member.membership))
        member.deliver(StateChanged(self.state))
        self.schedule_snapshot()

    def leave(self, member: RoomMember) -> None:
        if self.members.pop(member.id, None) is not None:
            if not self.members:
                self.empty_since = self._clock()
            self.schedule_snapshot()

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(ROLES, 0)
        for member in self.members.values():
            counts[member.role] += 1
        return counts

    def describe(self) -> dict:
        return {
            "name": self.key.name, "state": self.state, "queue": len(self.queue), "members": self.counts(),
            "dropped": dict(self.queue.dropped),
        }  # fmt: skip

    # ------------------------------------------------------------ input

    def offer(self, event: ViewerEvent, sender: ViewerSender | None = None) -> DropReason | None:
        reason = self.queue.offer(event, sender)
        if reason is None:
            self._queued.set()
            self.schedule_snapshot()
        return reason

    def _report_dropped(self, dropped: Dropped) -> None:
        """Every drop is told to whoever sent the event. When that sender can no longer be told (an
        HTTP request already answered, a member that left), the room's streamer and bridges are."""
        sender = dropped.sender
        if isinstance(sender, ViewerSender) and sender.viewer_dropped(dropped):
            return
        notice = ViewerDropped(dropped.reason, dropped.event, dropped.queued, via=getattr(sender, "channel", None))
        for member in list(self.members.values()):
            if member.role != "listener":
                member.deliver(notice)

    def streamer_takes_over(self) -> None:
        """The streamer speaks or types: a viewer answer in progress stops at once."""
        if self._viewer_turn is not None and self.session.busy:
            self.session.handle(Interrupt(self._viewer_turn))

    # ------------------------------------------------------------ output

    def _broadcast(self, event: Event) -> None:
        match event:
            case SessionStarted():
                self._started = event  # each member gets its own hello when it joins
                return
            case OutputConfigured(audio_format=fmt, sample_rate=rate) if self._started is not None:
                self._started = replace(self._started, output_format=fmt, output_sample_rate=rate)
            case StateChanged():
                self._changed.set()
                self.schedule_snapshot()
            case SpeechDetected():
                self._changed.set()
            case TurnEnded(turn_id=turn_id):
                if turn_id == self._viewer_turn:
                    self._viewer_turn = None
                self._changed.set()
            case UserTranscribed(turn_id=turn_id, viewers=viewers) if viewers:
                self._viewer_turn = turn_id
        for member in list(self.members.values()):
            member.deliver(event)

    def schedule_snapshot(self) -> None:
        """Coalesce a burst of changes (50 danmaku in one read) into one `room` frame per member."""
        if not self._snapshot_due:
            self._snapshot_due = True
            asyncio.get_running_loop().call_soon(self._send_snapshots)

    def _send_snapshots(self) -> None:
        self._snapshot_due = False
        counts = self.counts()
        for member in list(self.members.values()):
            member.deliver(RoomUpdated(self.key.name, self.state, len(self.queue), counts, member.membership))

    # ------------------------------------------------------------ the queue's turns

    async def _dispatch_loop(self) -> None:
        while True:
            await self._until_quiet()
            batch = self.queue.take()
            if batch is None:
                self._queued.clear()
                await self._queued.wait()
                continue
            self.schedule_snapshot()
            try:
                self.session.handle(SendText(prompt_for(batch), viewers=batch.events))
            except Exception:  # one bad batch must not silence the room
                logger.exception("live room %s: could not answer %s", self.key.name, batch.kind)

    async def _until_quiet(self) -> None:
        """Wait until no turn runs, nobody is speaking, and the last answer has played out."""
        while True:
            if self.session.busy:
                await self.session.wait_until_idle()
                continue
            self._changed.clear()
            if self.session.hearing_user or self.session.paused:  # paused: its playback may go on
                await self._wait_for_change(RECHECK_S)
                continue
            remaining = self.session.playback_remaining_s()
            if remaining <= 0 or not await self._wait_for_change(remaining + ANSWER_GAP_S):
                return

    async def _wait_for_change(self, timeout_s: float) -> bool:
        """True when the session changed within `timeout_s`."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._changed.wait()
            return True
        except TimeoutError:
            return False


@runtime_checkable
class ViewerSender(Protocol):
    """Who offered a viewer event: a room member, one event of an HTTP request, a platform feed."""

    channel: str  # "socket", "http" or "feed"

    def viewer_dropped(self, dropped: Dropped) -> bool:
        """Tell the sender its event was dropped; False when it can no longer be told."""
        ...


class RoomMember:
    """One connection's seat in a room; the connection drives it like a session."""

    channel = "socket"

    def __init__(self, room: Room, member_id: str, role: Role, receive_audio: bool, sink: Callable[[Event], None]):
        self.room = room
        self.id = member_id
        self.role = role
        self.receive_audio = receive_audio
        self.deliver = sink
        self.conversation = room.session.conversation
        self._audio_refused = False

    def __repr__(self) -> str:
        return f"RoomMember({self.id}, {self.role}, {self.room!r})"

    @property
    def membership(self) -> RoomMembership:
        return RoomMembership(self.room.key.name, self.role, self.receive_audio)

    @property
    def busy(self) -> bool:
        return self.room.session.busy

    @property
    def vad_lags_ms(self):
        return self.room.session.vad_lags_ms if self.role == "streamer" else ()

    def open(self) -> None:
        self.room.join(self)

    async def close(self) -> None:
        self.room.leave(self)

    def handle(self, command: Command) -> None:
        if isinstance(command, Ping):
            self.deliver(Pong(command.payload))
        elif isinstance(command, SetReceiveAudio):
            self.receive_audio = command.enabled
            self.room.schedule_snapshot()
        elif isinstance(command, ViewerEvent) and self.role != "listener":
            self._offer(command)
        elif self.role == "streamer":
            if isinstance(command, SendText | StartSpeaking | SubmitUtterance):
                self.room.streamer_takes_over()
            self.room.session.handle(command)
        elif isinstance(command, SendText) and self.role == "bridge":
            self._offer(ViewerEvent("danmaku", command.from_name or "", text=command.text, platform="bridge"))
        elif isinstance(command, ReportPlayback):
            pass  # only the streamer's playback decides what was heard
        elif isinstance(command, AppendAudio):
            if not self._audio_refused:  # once: a bridge streaming audio would drown in errors
                self._audio_refused = True
                self._forbidden("only a streamer's microphone reaches the room")
        else:
            self._forbidden(f"a {self.role} cannot do that in a room")

    def _offer(self, event: ViewerEvent) -> None:
        self.room.offer(event, self)

    def viewer_dropped(self, dropped: Dropped) -> bool:
        if self.room.members.get(self.id) is not self:
            return False  # left the room: the room is told instead
        self.deliver(ViewerDropped(dropped.reason, dropped.event, dropped.queued))
        return True

    def _forbidden(self, message: str) -> None:
        self.deliver(ErrorRaised(ErrorCode.FORBIDDEN, message))


class Rooms:
    """Every open room, by owner and name; closes rooms left empty for `linger_s`."""

    def __init__(self, linger_s: Callable[[], float], clock: Callable[[], float] = time.monotonic) -> None:
        self._linger_s = linger_s
        self._clock = clock
        self.rooms: dict[RoomKey, Room] = {}
        self._lock = asyncio.Lock()
        self._reaper: asyncio.Task | None = None

    def find(self, owner: str, name: str) -> Room | None:
        return self.rooms.get(RoomKey(owner, name))

    def owned_by(self, owner: str) -> list[Room]:
        return [room for key, room in self.rooms.items() if key.owner == owner]

    async def open(
        self,
        owner: str,
        name: str,
        *,
        max_per_owner: int,
        create: Callable[[RoomKey], Awaitable[Room]],
    ) -> Room:
        """The room, created on first use (`create` builds it; it may await)."""
        key = RoomKey(owner, name)
        async with self._lock:  # two first members must not build two rooms
            room = self.rooms.get(key)
            if room is None:
                if len(self.owned_by(owner)) >= max_per_owner:
                    raise AuthError(ErrorCode.TOO_MANY_ROOMS, f"at most {max_per_owner} live rooms per user")
                room = await create(key)
                room.open()
                self.rooms[key] = room
                logger.info("live room %s/%s opened", owner, name)
                if self._reaper is None:
                    self._reaper = asyncio.create_task(self._reap_loop(), name="live-rooms-reaper")
            return room

    async def _reap_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            horizon = self._clock() - self._linger_s()
            for key, room in list(self.rooms.items()):
                if room.empty_since is not None and room.empty_since <= horizon:
                    del self.rooms[key]
                    logger.info("live room %s/%s closed (nobody joined for a while)", key.owner, key.name)
                    try:
                        await room.close()
                    except Exception:  # the reaper must outlive one room's failure
                        logger.exception("live room %s/%s did not close cleanly", key.owner, key.name)

    async def close_all(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            await asyncio.gather(self._reaper, return_exceptions=True)
            self._reaper = None
        rooms, self.rooms = list(self.rooms.values()), {}
        await asyncio.gather(*(room.close() for room in rooms), return_exceptions=True)
