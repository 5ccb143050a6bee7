"""One WebSocket connection: the receive loop, the send loop, limits.

The receive loop only hands frames to the dialect and what it decodes to the
session (or to unified chat mode); it never waits for a turn. The send loop
drains the outbox through the dialect. `run()` has one `finally` that ends
everything the connection started; `close()` asks for that end and awaits it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from enum import Enum
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from ..config import LiveSettings
from ..engine.events import ErrorRaised, ReceiveAudioConfigured, SentenceAudio, SetReceiveAudio
from ..engine.session import LiveSession
from ..log import logger
from ..rooms.room import RoomMember
from ..errors import CloseCode, ErrorCode, ProtocolError
from ..protocol import ChatReply, ChatRequest, Dialect, Reply
from .outbox import Outbox
from .ratelimit import FrameRateLimiter


async def close_draining(websocket: WebSocket, code: int, reason: str, timeout_s: float = 2.0) -> None:
    """Close while reading (and dropping) what the client still sends, until it closes too: the
    server completes its close only once the frames queued ahead of it are read, and closing over
    unread frames resets the TCP connection, so the client would never see why."""
    closing = asyncio.create_task(websocket.close(code=int(code), reason=reason[:120]))
    try:
        async with asyncio.timeout(timeout_s):
            while (await websocket.receive())["type"] != "websocket.disconnect":
                pass
    except Exception:  # timed out, or the socket is already gone
        pass
    finally:
        await asyncio.gather(closing, return_exceptions=True)


class ConnectionState(Enum):
    OPEN = "open"  # frames flow both ways
    CLOSING = "closing"  # a close was asked for (reload, flood, failure): cleanup is under way
    CLOSED = "closed"  # `run()` has ended everything the connection started


class Connection:
    def __init__(
        self,
        websocket: WebSocket,
        *,
        settings: LiveSettings,
        dialect: Dialect,
        session_factory: Callable[[Callable], LiveSession | RoomMember],
        chat_factory: Callable[[Callable], Any] | None,
        receive_audio: bool = True,
    ) -> None:
        self.websocket = websocket
        self.settings = settings
        self.dialect = dialect
        self.outbox = Outbox()
        self.session = session_factory(self.outbox.put)
        self._chat_factory = chat_factory
        self._chat: Any | None = None
        self._send_lock = asyncio.Lock()
        self._limiter = FrameRateLimiter(settings.limits.max_frames_per_second)
        self._close_code: int | None = None
        self.state = ConnectionState.OPEN
        self._ended = asyncio.Event()  # set when `run()` has cleaned up
        self.username = self.session.conversation.username
        self.receive_audio = receive_audio  # False: answer audio frames are not sent to this client

    def __repr__(self) -> str:
        return f"Connection({self.session.id}, dialect={self.dialect.name})"

    async def run(self) -> None:
        sender = asyncio.create_task(self._send_loop(), name=f"live-send-{self.session.id}")
        try:
            self.session.open()
            await self._receive_loop()
        except WebSocketDisconnect:
            pass
        except Exception as exc:
            logger.error("live connection %s failed: %s", self.session.id, exc, exc_info=True)
            self._closing(CloseCode.INTERNAL_ERROR)
        finally:
            self._closing(CloseCode.NORMAL)
            try:
                await self.session.close()
                if self._chat is not None:
                    await self._chat.close()
                await self._flush_outbox(sender)
                await self._close_socket(self._close_code or CloseCode.NORMAL)
            finally:
                self.state = ConnectionState.CLOSED
                self._ended.set()

    def _closing(self, code: int) -> bool:
        """Enter CLOSING with this close code; False when a close is already under way."""
        if self.state is not ConnectionState.OPEN:
            return False
        self.state, self._close_code = ConnectionState.CLOSING, code
        return True

    async def close(self, code: int, reason: str) -> None:
        """End the connection (plugin reload, shutdown), saying why first; returns once `run()` has
        cleaned up (the turn saved its heard history)."""
        if self._closing(code):
            self.outbox.put(ErrorRaised(ErrorCode.NOT_AVAILABLE, reason))
            await self._drained(timeout_s=1.0)
            await self._close_socket(code, reason)  # the receive loop sees the disconnect; `run()` cleans up
        await self._ended.wait()

    async def _drained(self, timeout_s: float, sender: asyncio.Task | None = None) -> None:
        """Wait (briefly) until queued frames went out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while len(self.outbox) and not (sender is not None and sender.done()) and loop.time() < deadline:
            await asyncio.sleep(0.01)

    # ------------------------------------------------------------ receive

    async def _receive_loop(self) -> None:
        limits = self.settings.limits
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            verdict = self._limiter.admit()
            if verdict == "flood":
                self.outbox.put(ErrorRaised(ErrorCode.RATE_LIMITED, "too many frames: disconnecting"))
                await self._shed_flood()
                return
            if verdict == "drop":
                if self._limiter.should_warn():
                    self.outbox.put(
                        ErrorRaised(ErrorCode.RATE_LIMITED, f"more than {limits.max_frames_per_second} frames/s; frames dropped")
                    )
                continue
            text, data = message.get("text"), message.get("bytes")
            size = len(data) if data is not None else len(text or "")
            if size > limits.max_frame_bytes:
                self.outbox.put(
                    ErrorRaised(ErrorCode.FRAME_TOO_LARGE, f"frame of {size} bytes exceeds {limits.max_frame_bytes}")
                )
                continue
            try:
                if data is not None:
                    decoded = self.dialect.decode_binary(data)
                elif text is not None:
                    decoded = self.dialect.decode_text(text)
                else:
                    continue
            except ProtocolError as exc:
                self.outbox.put(ErrorRaised(exc.code, exc.message))
                continue
            for item in decoded:
                match item:
                    case Reply():  # the dialect's own answer: queued in order, the engine never sees it
                        self.outbox.put(item)
                    case ChatRequest(frame=frame):
                        await self._chat_request(frame)
                    case SetReceiveAudio(enabled=enabled):
                        self.receive_audio = enabled
                        self.outbox.put(ReceiveAudioConfigured(enabled))
                        self.session.handle(item)
                    case _:
                        self.session.handle(item)

    async def _shed_flood(self) -> None:
        """Close with FLOODING while still reading (and dropping) what the client keeps sending:
        the server only completes its close once the frames queued ahead of it are read."""
        self._closing(CloseCode.FLOODING)
        await asyncio.sleep(0.05)  # let the error frame go out first
        await close_draining(self.websocket, CloseCode.FLOODING, "flooding")

    async def _chat_request(self, frame: dict) -> None:
        """Unified chat mode, answered by the host's chat handler; its replies go out through the dialect."""
        if self._chat_factory is None:
            self.outbox.put(ErrorRaised(ErrorCode.UNSUPPORTED, "unified chat mode is not available here"))
            return
        if self._chat is None:
            self._chat = self._chat_factory(self._chat_reply)
        await self._chat.handle(frame)

    async def _chat_reply(self, payload: dict) -> None:
        self.outbox.put(ChatReply(payload))

    # ------------------------------------------------------------ send

    async def _send_loop(self) -> None:
        while True:
            event = await self.outbox.get()
            if isinstance(event, SentenceAudio) and not self.receive_audio:
                continue
            for frame in self.dialect.encode(event):
                if not await self._send(frame):
                    return

    async def _send(self, frame: str | bytes) -> bool:
        if self.websocket.application_state != WebSocketState.CONNECTED:
            return False
        try:
            async with self._send_lock:
                if isinstance(frame, bytes):
                    await self.websocket.send_bytes(frame)
                else:
                    await self.websocket.send_text(frame)
            return True
        except Exception:  # the client went away; the receive loop will notice
            return False

    async def _flush_outbox(self, sender: asyncio.Task) -> None:
        """Let already-queued frames (an error that explains the close) go out, briefly."""
        try:
            await self._drained(timeout_s=1.0, sender=sender)
        finally:
            self.outbox.close()
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)

    async def _close_socket(self, code: int, reason: str = "") -> None:
        if self.websocket.application_state == WebSocketState.CONNECTED:
            try:
                await self.websocket.close(code=int(code), reason=reason)
            except Exception:
                pass
