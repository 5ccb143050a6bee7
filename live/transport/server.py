"""The `/api/v1/live/ws` endpoint: authenticate, pick dialect and mode, run.

No frame is processed before authentication succeeds. Failures send an
`error` frame with a code, in the client's dialect, then close 1008.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from statistics import quantiles
from typing import Any

from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket

from ..audio.denoise import noise_suppression_status
from ..config import LiveSettings
from ..engine.events import ErrorRaised
from ..engine.ports import Conversation
from ..engine.cascade import CascadeAnswerer
from ..engine.session import LiveSession
from ..engine.turn import Answerer
from ..engine.end_of_turn import EndOfTurnSettings
from ..engine.turn_model_worker import TurnModelWorker
from ..engine.vad_worker import ServerVad, VadWorker
from ..errors import AuthError, CloseCode, ErrorCode, LiveError
from ..log import logger
from ..realtime.answerer import RealtimeAnswerer, realtime_settings
from ..rooms.room import Room, RoomKey, RoomMember, Rooms
from ..services import Access, Services
from .connection import Connection, close_draining
from .credentials import extract
from .request import ConnectRequest

WS_PATH = "/api/v1/live/ws"
CLOSE_ALL_TIMEOUT_S = 10.0  # turns being closed save their heard history within this


class LiveServer:
    def __init__(self, settings: Callable[[], LiveSettings], services: Services) -> None:
        self._settings = settings
        self._services = services
        self.connections: dict[str, Connection] = {}
        # Server VAD of every session runs on this one worker (one thread hop per cycle, not per chunk).
        self.vad = VadWorker() if services.endpointer is not None else None
        # The end-of-turn model of every session: its own thread, loaded when a session first wants it.
        self.end_of_turn = (
            TurnModelWorker(services.turn_model) if services.turn_model is not None and self.vad is not None else None
        )
        self.rooms = Rooms(lambda: self._settings().room_linger_s)
        self.accepting = True

    def settings(self) -> LiveSettings:
        return self._settings()

    def access_for(self, app: Any) -> Access:
        return self._services.access(app)

    async def endpoint(self, websocket: WebSocket) -> None:
        await websocket.accept()
        query = websocket.query_params
        dialect_name = ConnectRequest.dialect_of(query, self._services.dialects)
        if not self.accepting:
            error = LiveError(ErrorCode.NOT_AVAILABLE, "Live Mode is restarting")
            await self._refuse(websocket, dialect_name, error, CloseCode.SERVICE_RESTART)
            return
        settings = self._settings()
        access = self.access_for(websocket.app)
        session_id = uuid.uuid4().hex
        try:  # credentials first: nothing about the query is answered before them
            username = await self.authenticate(access, websocket, settings)
            if sum(1 for c in self.connections.values() if c.username == username) >= settings.limits.max_sessions_per_user:
                raise AuthError(ErrorCode.TOO_MANY_SESSIONS, "too many live sessions open for this user")
            request = ConnectRequest.parse(query, settings, self._services.dialects)
            self._check_backend(request, settings)
            conversation, session_factory = await self._seat(access, username, session_id, settings, request)
        except LiveError as exc:  # AuthError, or a ProtocolError about the query
            await self._refuse(websocket, dialect_name, exc, CloseCode.POLICY_VIOLATION)
            return
        connection = Connection(
            websocket,
            settings=settings,
            dialect=self._services.dialects[request.dialect](settings, request.chat_default),
            session_factory=session_factory,
            chat_factory=self._chat_factory(websocket.app, access, conversation),
            receive_audio=request.receive_audio,
        )
        self.connections[session_id] = connection
        logger.info(
            "live session %s opened user=%s dialect=%s chat_default=%s room=%s",
            session_id, username, request.dialect, request.chat_default,
            f"{request.room} ({request.role})" if request.room else "-",
        )
        try:
            await connection.run()
        finally:
            self.connections.pop(session_id, None)
            logger.info("live session %s closed", session_id)

    async def _seat(self, access: Access, username: str, session_id: str, settings: LiveSettings, request: ConnectRequest):
        """This connection's conversation and session: its own, or a seat in a shared room."""
        if request.room is None:
            conversation = Conversation(username, await access.open_conversation(username, request.conversation_id))
            return conversation, lambda sink: self._session(session_id, conversation, settings, sink, request)

        async def create_room(key: RoomKey) -> Room:
            room_conversation = Conversation(
                username, await access.open_conversation(username, request.conversation_id or key.default_conversation_id)
            )
            return Room(
                key,
                lambda sink: self._session(uuid.uuid4().hex, room_conversation, settings, sink, request),
                settings.room_queue,
            )

        room = await self.rooms.open(username, request.room, max_per_owner=settings.limits.max_rooms_per_user, create=create_room)
        return room.session.conversation, lambda sink: RoomMember(room, session_id, request.role, request.receive_audio, sink)

    def _session(self, session_id, conversation, settings, sink, request: ConnectRequest) -> LiveSession:
        factory = self._services.endpointer
        use_vad = request.server_vad and factory is not None and self.vad is not None
        vad = (
            ServerVad(self.vad, lambda: factory(settings), self.end_of_turn, noise_suppression=settings.noise_suppression)
            if use_vad
            else None
        )
        return LiveSession(
            session_id=session_id,
            conversation=conversation,
            settings=settings,
            agent=self._services.agent,
            speech=self._services.speech,
            sink=sink,
            vad=vad,
            output=request.output,
            reports_playback=request.reports_playback,
            pause_play=request.pause_play,
            answerer=self._answerer(conversation, settings, request),
        )

    def _check_backend(self, request: ConnectRequest, settings: LiveSettings) -> None:
        """A connection that asks for (or gets by setting) the realtime backend needs it set up."""
        if (request.backend or settings.backend) != "realtime":
            return
        if not settings.realtime.configured or self._services.realtime_host is None:
            raise LiveError(
                ErrorCode.REALTIME_NOT_CONFIGURED,
                "The realtime backend is not set up: set realtime_url (ws:// or wss://) in the Live Mode "
                "settings, or connect with ?backend=cascade",
            )
        try:
            realtime_settings(settings.realtime)
        except ValueError as exc:
            message = f"The realtime backend's settings are invalid: {exc}"
            raise LiveError(ErrorCode.REALTIME_NOT_CONFIGURED, message) from exc

    def _answerer(self, conversation: Conversation, settings: LiveSettings, request: ConnectRequest) -> Answerer | None:
        """The session's backend: None for the cascade (the session's default), else a realtime model's."""
        if (request.backend or settings.backend) != "realtime":
            return None
        backend = settings.realtime
        return RealtimeAnswerer(
            conversation=conversation,
            host=self._services.realtime_host,
            settings=realtime_settings(backend),
            voice=backend.voice,
            transcription_model=backend.transcription_model,
            fallback=CascadeAnswerer() if backend.fallback else None,
            # the model's own detection replaces our server VAD; a `vad=off` client delimits its turns itself
            turn_detection=backend.turn_detection if request.server_vad else "ours",
        )

    def _chat_factory(self, app, access, conversation: Conversation):
        make = self._services.chat
        if make is None:
            return None
        return lambda send_json: make(app, access, conversation.username, conversation.conversation_id, send_json)

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

    async def _refuse(self, websocket: WebSocket, dialect_name: str, error: LiveError, close_code: int) -> None:
        """One error frame in the client's dialect that says why, then the close (see `close_draining`)."""
        dialect = self._services.dialects[dialect_name](self._settings(), False)
        try:
            for frame in dialect.encode(ErrorRaised(error.code, error.message)):
                await (websocket.send_bytes(frame) if isinstance(frame, bytes) else websocket.send_text(frame))
        except Exception:  # the client is already gone
            return
        await close_draining(websocket, close_code, error.message)

    async def close_all(self, code: int, reason: str) -> None:
        """Close every live socket with a clear code and wait (bounded) until each has cleaned up."""
        self.accepting = False
        closing = [asyncio.create_task(c.close(code, reason)) for c in list(self.connections.values())]
        if closing:
            _done, pending = await asyncio.wait(closing, timeout=CLOSE_ALL_TIMEOUT_S)
            for task in pending:  # a turn that would not finish: its connection still ends on its own
                task.cancel()
            await asyncio.gather(*closing, return_exceptions=True)
        await self.rooms.close_all()
        if self.vad is not None:
            await self.vad.aclose()
        if self.end_of_turn is not None:
            await self.end_of_turn.aclose()

    def status(self) -> dict[str, Any]:
        lags = [lag for c in self.connections.values() for lag in c.session.vad_lags_ms]
        p99 = quantiles(lags, n=100)[98] if len(lags) >= 2 else (lags[0] if lags else 0.0)
        return {
            "sessions": len(self.connections),
            "users": len({c.username for c in self.connections.values()}),
            "busy": sum(1 for c in self.connections.values() if c.session.busy),
            "rooms": len(self.rooms.rooms),
            "vad_lag_p99_ms": round(p99, 2),
            **self.end_of_turn_status(detail=True),
            **noise_suppression_status(self._settings().noise_suppression and self.vad is not None),
            **(self.vad.denoise_status() if self.vad is not None else {}),
        }

    def end_of_turn_status(self, *, detail: bool = False) -> dict[str, Any]:
        """How server-VAD turns end now: `model`, or `silence` with the reason; `detail` adds the
        model worker's state and counts (for the signed-in plugin status, not the public health)."""
        settings = self._settings()
        model = self.end_of_turn
        if settings.end_of_turn != "model":
            mode, reason = "silence", "setting"
        elif self.vad is None:
            mode, reason = "silence", "server_vad_unavailable"
        elif model is None:
            mode, reason = "silence", "model_off"
        elif model.state == "unavailable":
            mode, reason = "silence", model.reason
        elif detail and model.state == "ready" and model.status().lag_ms > EndOfTurnSettings().max_model_lag_ms:
            # (not in the public health: the load would tell strangers how busy the server is)
            mode, reason = "silence", "model_overloaded"
        else:
            mode, reason = "model", None  # loaded, or loads with the first session that wants it
        status: dict[str, Any] = {"end_of_turn": mode, "end_of_turn_reason": reason}
        if detail and model is not None:
            status["end_of_turn_model"] = model.describe()
        return status
