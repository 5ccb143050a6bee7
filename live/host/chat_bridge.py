"""`ct=chat` frames, answered by the host's own unified-chat handler.

The host already implements `bind`/`send`/`interrupt` with attachments and
history; we delegate to it, adding what it lacks on our endpoint: every
session id is checked to belong to the connected user. What it sends goes to
`send_json` as a payload; the connection's dialect writes the frame (with
`ct: "chat"`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from astrbot.core import db_helper

from ..errors import AuthError, ErrorCode
from ..log import logger

SendJson = Callable[[dict], Awaitable[None]]
MAX_BOUND_SESSIONS = 8


class ChatBridge:
    def __init__(self, app: Any, access: Any, username: str, conversation_id: str, send_json: SendJson) -> None:
        self._service = app.state.services.live_chat
        self._access = access
        self._username = username
        self._conversation_id = conversation_id
        self._send = send_json
        self._session = self._service.create_session(username)
        self._tasks: set[asyncio.Task] = set()
        self._bound: set[str] = {conversation_id}

    async def handle(self, message: dict) -> None:
        kind = message.get("t")
        if kind in ("bind", "send"):
            message.setdefault("session_id", self._conversation_id)
            try:
                await self._access.open_conversation(self._username, str(message.get("session_id") or ""))
            except AuthError as exc:
                await self._error(exc.code, exc.message)
                return
        if kind == "bind" and not self._may_bind(str(message.get("session_id"))):
            await self._error(ErrorCode.TOO_MANY_SESSIONS, f"at most {MAX_BOUND_SESSIONS} chat sessions per connection")
            return
        if kind != "send":
            await self._service.handle_chat_message(self._session, message, self._send)
            return
        if not await self._quotes_are_own(message):
            await self._error(ErrorCode.FORBIDDEN, "a reply part quotes a message of another user")
            return
        request_id = str(message.get("message_id") or "")
        active = self._session.chat_request_tasks.get(request_id)
        if request_id and active is not None and not active.done():
            await self._error(ErrorCode.INVALID_MESSAGE_FORMAT, "Duplicate active message_id", message_id=request_id)
            return
        task = asyncio.create_task(self._run(message), name=f"live-chat-{request_id or 'send'}")
        if request_id:
            self._session.chat_request_tasks[request_id] = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _error(self, code: ErrorCode, message: str, **extra: Any) -> None:
        await self._send({"t": "error", "code": code.value, "data": message, **extra})

    def _may_bind(self, session_id: str) -> bool:
        """Each bound session holds a host subscription task for the socket's life: cap them."""
        if session_id in self._bound or len(self._bound) < MAX_BOUND_SESSIONS:
            self._bound.add(session_id)
            return True
        return False

    async def _quotes_are_own(self, message: dict) -> bool:
        """The host loads any quoted record by id; only the user's own conversations may be quoted."""
        parts = message.get("message")
        for part in parts if isinstance(parts, list) else []:
            if not isinstance(part, dict) or part.get("type") != "reply" or part.get("message_id") is None:
                continue
            try:
                record = await db_helper.get_platform_message_history_by_id(int(part["message_id"]))
            except (TypeError, ValueError):
                return False
            if record is None:
                continue
            if record.platform_id != "webchat":
                return False
            try:
                await self._access.open_conversation(self._username, str(record.user_id))
            except AuthError:
                return False
        return True

    async def _run(self, message: dict) -> None:
        try:
            await self._service.handle_chat_message(self._session, message, self._send)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.error("live chat-mode request failed: %s", exc, exc_info=True)
            await self._error(ErrorCode.PROCESSING_ERROR, str(exc))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._service.cleanup_session(self._session)
