"""One WebSocket connection: the receive loop, the send loop, limits.

The receive loop only decodes and hands commands to the session; it never
waits for a turn. The send loop drains the outbox. `run()` has one
`finally` that ends everything the connection started.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from astrbot.api import logger

from ..config import LiveSettings
from ..engine.events import ErrorRaised, ReceiveAudioConfigured, SentenceAudio, SetReceiveAudio
from ..engine.session import LiveSession
from ..rooms.room import RoomMember
from ..errors import CloseCode, ErrorCode, ProtocolError
from ..protocol import Dialect
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


class Connection:
    def __init__(
        self,
        websocket: WebSocket,
        *,
        settings: LiveSettings,
        dialect: Dialect,
        session_factory: Callable[[Callable], LiveSession | RoomMember],
        chat_factory: Callable[[Callable], Any] | None,
        chat_default: bool,
        receive_audio: bool = True,
    ) -> None:
        self.websocket = websocket
        self.settings = settings
        self.dialect = dialect
        self.outbox = Outbox()
        self.session = session_factory(self.outbox.put)
        self._chat_factory = chat_factory
        self._chat: Any | None = None
        self._chat_default = chat_default
        self._send_lock = asyncio.Lock()
        self._limiter = FrameRateLimiter(settings.limits.max_frames_per_second)
        self._close_code: int | None = None
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
            self._close_code = CloseCode.INTERNAL_ERROR
        finally:
            await self.session.close()
            if self._chat is not None:
                await self._chat.close()
            await self._flush_outbox(sender)
            await self._close_socket(self._close_code or CloseCode.NORMAL)

    async def close(self, code: int, reason: str) -> None:
        """Ask the connection to end (plugin reload, shutdown), saying why first; `run()` cleans up."""
        self._close_code = code
        self.outbox.put(ErrorRaised(ErrorCode.NOT_AVAILABLE, reason))
        await self._drained(timeout_s=1.0)
        await self._close_socket(code, reason)

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
                    commands = self.dialect.decode_binary(data)
                elif text is not None:
                    if await self._maybe_chat(text):
                        continue
                    commands = self.dialect.decode_text(text)
                else:
                    continue
            except ProtocolError as exc:
                self.outbox.put(ErrorRaised(exc.code, exc.message))
                continue
            for command in commands:
                if isinstance(command, SetReceiveAudio):
                    self.receive_audio = command.enabled
                    self.outbox.put(ReceiveAudioConfigured(command.enabled))
                self.session.handle(command)

    async def _shed_flood(self) -> None:
        """Close with FLOODING while still reading (and dropping) what the client keeps sending:
        the server only completes its close once the frames queued ahead of it are read."""
        self._close_code = CloseCode.FLOODING
        await asyncio.sleep(0.05)  # let the error frame go out first
        await close_draining(self.websocket, CloseCode.FLOODING, "flooding")

    async def _maybe_chat(self, text: str) -> bool:
        """Unified chat mode: frames with `ct: "chat"` (or every frame on a `ct=chat` socket)."""
        if self._chat_factory is None or (not self._chat_default and '"ct"' not in text):
            return False
        try:
            frame = json.loads(text)
        except ValueError:
            return False  # the dialect reports malformed JSON
        if not isinstance(frame, dict) or frame.get("ct", "chat" if self._chat_default else "live") != "chat":
            return False
        if self._chat is None:
            self._chat = self._chat_factory(self._send_json)
        await self._chat.handle(frame)
        return True

    # ------------------------------------------------------------ send

    async def _send_loop(self) -> None:
        while True:
            event = await self.outbox.get()
            if isinstance(event, SentenceAudio) and not self.receive_audio:
                continue
            for frame in self.dialect.encode(event):
                if not await self._send(frame):
                    return

    async def _send_json(self, payload: dict) -> None:
        await self._send(json.dumps(payload, ensure_ascii=False, separators=(",", ":")))

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
