"""HTTP side of live rooms: ingestion for any platform's bridge, and the room list.

Same credentials as the socket; the events use the `viewer_event` shape of the
AstrBot Live dialect, parsed by the same function.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..errors import AuthError, ErrorCode, ProtocolError
from ..protocol.astrbot_live import viewer_event
from ..rooms.queue import Dropped

if TYPE_CHECKING:
    from .server import LiveServer

MAX_EVENTS_PER_REQUEST = 100
MAX_BODY_BYTES = 256 * 1024


def _error(status: int, code: ErrorCode, message: str) -> JSONResponse:
    return JSONResponse({"code": code.value, "message": message}, status_code=status)


class IngestRequest:
    """One POST's events while it is answered: every drop of them (refused on arrival, or pushed out
    by a later event of the same request) goes in its response. Once answered it can no longer be
    told, so the room tells its streamer and bridges of later drops (`via: "http"`)."""

    def __init__(self) -> None:
        self.answered = False
        self.dropped: list[dict] = []

    def sender(self, index: int) -> IngestedEvent:
        return IngestedEvent(self, index)


class IngestedEvent:
    channel = "http"

    def __init__(self, request: IngestRequest, index: int) -> None:
        self._request = request
        self._index = index

    def viewer_dropped(self, dropped: Dropped) -> bool:
        if self._request.answered:
            return False
        entry = {"index": self._index, "reason": dropped.reason}
        if dropped.queued:
            entry["queued"] = True
        self._request.dropped.append(entry)
        return True


class RoomsApi:
    def __init__(self, server: LiveServer) -> None:
        self._server = server

    async def _user(self, request: Request) -> str | JSONResponse:
        """Who the request speaks for, or the refusal to answer with (403 for a known key's bad claim)."""
        try:
            return await self._server.authenticate(self._server.access_for(request.app), request)
        except AuthError as exc:
            status = 403 if exc.code in (ErrorCode.FORBIDDEN, ErrorCode.BAD_USER) else 401
            return _error(status, exc.code, exc.message)

    async def ingest(self, request: Request) -> JSONResponse:
        """POST /api/v1/live/rooms/{name}/events"""
        owner = await self._user(request)
        if isinstance(owner, JSONResponse):
            return owner
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return _error(413, ErrorCode.FRAME_TOO_LARGE, f"body larger than {MAX_BODY_BYTES} bytes")
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            return _error(400, ErrorCode.INVALID_MESSAGE_FORMAT, "body is not valid JSON")
        items = payload.get("events", payload) if isinstance(payload, dict) else None
        items = [items] if isinstance(items, dict) else items
        if not isinstance(items, list) or not items:
            return _error(400, ErrorCode.MISSING_FIELD, "send one event object or {\"events\": [...]}")
        if len(items) > MAX_EVENTS_PER_REQUEST:
            return _error(413, ErrorCode.FRAME_TOO_LARGE, f"at most {MAX_EVENTS_PER_REQUEST} events per request")
        settings = self._server.settings()
        # texts longer than the room's cap are shortened by the queue, like danmaku from a socket
        try:
            events = [viewer_event(item if isinstance(item, dict) else {}, settings.limits.max_text_chars) for item in items]
        except ProtocolError as exc:
            return _error(400, exc.code, exc.message)
        room = self._server.rooms.find(owner, request.path_params["name"])
        if room is None:
            return _error(404, ErrorCode.ROOM_NOT_FOUND, "no member has this room open")
        ingest = IngestRequest()
        for index, event in enumerate(events):
            room.offer(event, ingest.sender(index))
        ingest.answered = True  # no await since the first offer: the drops above are all of this request's
        dropped = sorted(ingest.dropped, key=lambda d: d["index"])
        return JSONResponse({"accepted": len(events) - len(dropped), "dropped": dropped, "queue": len(room.queue)})

    async def list(self, request: Request) -> JSONResponse:
        """GET /api/v1/live/rooms"""
        owner = await self._user(request)
        if isinstance(owner, JSONResponse):
            return owner
        return JSONResponse({"rooms": [room.describe() for room in self._server.rooms.owned_by(owner)]})


def room_routes(server: LiveServer) -> list[Route]:
    api = RoomsApi(server)
    return [
        Route("/api/v1/live/rooms/{name}/events", api.ingest, methods=["POST"], name="live_room_events"),
        Route("/api/v1/live/rooms", api.list, methods=["GET"], name="live_rooms"),
    ]
