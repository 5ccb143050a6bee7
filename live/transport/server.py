"""The `/api/v1/live/ws` endpoint: authenticate, pick dialect and mode, run.

No frame is processed before authentication succeeds. Failures send an
`error` frame with a code, then close 1008.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from statistics import quantiles
from typing import Any, Protocol

from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket

from astrbot.api import logger

from ..audio.vad import Endpointer
from ..config import LiveSettings
from ..engine.ports import Agent, Conversation, Speech
from ..engine.session import LiveSession
from ..engine.speech import OutputFormat
from ..engine.vad_worker import ServerVad, VadWorker
from ..errors import AuthError, CloseCode, ErrorCode
from ..protocol import Dialect
from ..protocol.astrbot_live import dumps
from ..rooms.room import ROLES, ROOM_NAME, Room, RoomKey, RoomMember, Rooms
from .connection import Connection, close_draining
from .credentials import extract

WS_PATH = "/api/v1/live/ws"


class Access(Protocol):
    def verify_dashboard_token(self, token: str) -> str: ...

    async def verify_api_key(self, raw_key: str, raw_username: str | None) -> str: ...

    async def open_conversation(self, username: str, conversation_id: str | None) -> str: ...


@dataclass(slots=True)
class Services:
    """What the endpoint needs, built by main.py from the host."""

    access: Callable[[Any], Access]  # app -> access checks
    agent: Agent
    speech: Speech
    chat: Callable[..., Any] | None  # (app, access, username, cid, send_json) -> chat bridge
    endpointer: Callable[[LiveSettings], Endpointer] | None
    dialects: dict[str, Callable[[LiveSettings], Dialect]]


class LiveServer:
    def __init__(self, settings: Callable[[], LiveSettings], services: Services) -> None:
        self._settings = settings
        self._services = services
        self.connections: dict[str, Connection] = {}
        # Server VAD of every session runs on this one worker (one thread hop per cycle, not per chunk).
        self.vad = VadWorker() if services.endpointer is not None else None
        self.rooms = Rooms(lambda: self._settings().room_linger_s)
        self.accepting = True

    def settings(self) -> LiveSettings:
        return self._settings()

    def access_for(self, app: Any) -> Access:
        return self._services.access(app)

    async def endpoint(self, websocket: WebSocket) -> None:
        await websocket.accept()
        if not self.accepting:
            await self._refuse(websocket, ErrorCode.NOT_AVAILABLE, "Live Mode is restarting", CloseCode.SERVICE_RESTART)
            return
        settings = self._settings()
        query = websocket.query_params
        access = self.access_for(websocket.app)
        room_name, role = query.get("room"), (query.get("role") or "streamer").lower()
        receive_audio = (query.get("audio") or "1").lower() not in ("0", "false", "off", "no")
        try:
            username = await self.authenticate(access, websocket, settings)
            if sum(1 for c in self.connections.values() if c.username == username) >= settings.limits.max_sessions_per_user:
                raise AuthError(ErrorCode.TOO_MANY_SESSIONS, "too many live sessions open for this user")
        except AuthError as exc:
            await self._refuse(websocket, exc.code, exc.message, CloseCode.POLICY_VIOLATION)
            return
        dialect_name = (query.get("protocol") or "astrbot").lower()
        ct = (query.get("ct") or "live").lower()
        output = self._output_format(query, settings)
        if dialect_name not in self._services.dialects or ct not in ("live", "chat") or output is None:
            await self._refuse(
                websocket,
                ErrorCode.INVALID_MESSAGE_FORMAT,
                "unsupported query: protocol must be one of "
                f"{sorted(self._services.dialects)}, ct live or chat, audio_format wav or pcm16",
                CloseCode.POLICY_VIOLATION,
            )
            return
        if room_name is not None and (not ROOM_NAME.match(room_name) or role not in ROLES):
            await self._refuse(
                websocket,
                ErrorCode.INVALID_MESSAGE_FORMAT,
                "room must be 1-64 letters, digits, '-', '_' or '.', and role streamer, bridge or listener",
                CloseCode.POLICY_VIOLATION,
            )
            return
        session_id = uuid.uuid4().hex
        try:
            conversation, session_factory = await self._seat(
                access, username, session_id, settings, query, output, room_name, role, receive_audio
            )
        except AuthError as exc:
            await self._refuse(websocket, exc.code, exc.message, CloseCode.POLICY_VIOLATION)
            return
        connection = Connection(
            websocket,
            settings=settings,
            dialect=self._services.dialects[dialect_name](settings),
            session_factory=session_factory,
            chat_factory=self._chat_factory(websocket.app, access, conversation),
            chat_default=ct == "chat",
            receive_audio=receive_audio,
        )
        self.connections[session_id] = connection
        logger.info(
            "live session %s opened user=%s dialect=%s ct=%s room=%s",
            session_id, username, dialect_name, ct, f"{room_name} ({role})" if room_name else "-",
        )
        try:
            await connection.run()
        finally:
            self.connections.pop(session_id, None)
            logger.info("live session %s closed", session_id)

    async def _seat(self, access, username, session_id, settings, query, output, room_name, role, receive_audio):
        """This connection's conversation and session: its own, or a seat in a shared room."""
        requested_cid = query.get("conversation_id") or query.get("session_id")
        if room_name is None:
            conversation = Conversation(username, await access.open_conversation(username, requested_cid))
            return conversation, lambda sink: self._session(session_id, conversation, settings, sink, query, output)

        async def create_room(key: RoomKey) -> Room:
            room_conversation = Conversation(
                username, await access.open_conversation(username, requested_cid or key.default_conversation_id)
            )
            return Room(
                key,
                lambda sink: self._session(uuid.uuid4().hex, room_conversation, settings, sink, query, output),
                settings.room_queue,
            )

        room = await self.rooms.open(username, room_name, max_per_owner=settings.limits.max_rooms_per_user, create=create_room)
        return room.session.conversation, lambda sink: RoomMember(room, session_id, role, receive_audio, sink)

    def _session(self, session_id, conversation, settings, sink, query, output) -> LiveSession:
        vad_off = (query.get("vad") or "server").lower() in ("off", "client", "none")
        factory = self._services.endpointer
        vad = None if vad_off or factory is None or self.vad is None else ServerVad(self.vad, lambda: factory(settings))
        return LiveSession(
            session_id=session_id,
            conversation=conversation,
            settings=settings,
            agent=self._services.agent,
            speech=self._services.speech,
            sink=sink,
            vad=vad,
            output=output,
            reports_playback=query.get("report_playback") in ("1", "true"),
        )

    def _chat_factory(self, app, access, conversation: Conversation):
        make = self._services.chat
        if make is None:
            return None
        return lambda send_json: make(app, access, conversation.username, conversation.conversation_id, send_json)

    @staticmethod
    def _output_format(query, settings: LiveSettings) -> OutputFormat | None:
        fmt = (query.get("audio_format") or settings.output_audio_format).lower()
        try:
            rate = int(query.get("sample_rate") or settings.output_sample_rate)
        except ValueError:
            return None
        if fmt not in ("wav", "pcm16") or not (rate == 0 or 8000 <= rate <= 48000):
            return None
        return OutputFormat(fmt, rate)

    async def authenticate(self, access: Access, conn: HTTPConnection, settings: LiveSettings | None = None) -> str:
        """The username these credentials speak for, or AuthError."""
        settings = settings or self._settings()
        creds = extract(conn)
        if creds.token:
            return access.verify_dashboard_token(creds.token)
        if creds.api_key:
            if not settings.open_api_enabled:
                raise AuthError(ErrorCode.UNAUTHORIZED, "API-key access is turned off in the Live Mode settings")
            return await access.verify_api_key(creds.api_key, creds.username)
        raise AuthError(ErrorCode.UNAUTHORIZED, "Missing credentials: pass ?token= (dashboard) or an API key")

    @staticmethod
    async def _refuse(websocket: WebSocket, code: ErrorCode, message: str, close_code: int) -> None:
        """One error frame that says why, then the close (see `close_draining`)."""
        try:
            await websocket.send_text(dumps({"t": "error", "code": code.value, "data": message}))
        except Exception:  # the client is already gone
            return
        await close_draining(websocket, close_code, message)

    async def close_all(self, code: int, reason: str) -> None:
        """Close every live socket with a clear code and wait for their cleanup."""
        self.accepting = False
        connections = list(self.connections.values())
        await asyncio.gather(*(c.close(code, reason) for c in connections), return_exceptions=True)
        for _ in range(200):  # bounded: up to 10 s for turns to save their history
            if not self.connections:
                break
            await asyncio.sleep(0.05)
        await self.rooms.close_all()
        if self.vad is not None:
            await self.vad.aclose()

    def status(self) -> dict[str, Any]:
        lags = [lag for c in self.connections.values() for lag in c.session.vad_lags_ms]
        p99 = quantiles(lags, n=100)[98] if len(lags) >= 2 else (lags[0] if lags else 0.0)
        return {
            "sessions": len(self.connections),
            "users": len({c.username for c in self.connections.values()}),
            "busy": sum(1 for c in self.connections.values() if c.session.busy),
            "rooms": len(self.rooms.rooms),
            "vad_lag_p99_ms": round(p99, 2),
        }
