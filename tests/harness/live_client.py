"""A small WebSocket client for tests: send frames, read them as a timeline."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import websockets


class LiveClient:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.frames: list[dict] = []  # every frame received, with "_at" (monotonic)
        self.binary: list[bytes] = []

    @classmethod
    async def open(cls, url: str, headers: dict | None = None) -> LiveClient:
        ws = await websockets.connect(url, additional_headers=headers, max_size=64 * 1024 * 1024, open_timeout=10)
        return cls(ws)

    async def send(self, frame: dict) -> None:
        await self.ws.send(json.dumps(frame))

    async def send_raw(self, data: str | bytes) -> None:
        await self.ws.send(data)

    async def recv(self, timeout: float = 10) -> dict:
        while True:
            raw = await asyncio.wait_for(self.ws.recv(), timeout)
            if isinstance(raw, bytes):
                self.binary.append(raw)
                continue
            frame = json.loads(raw)
            frame["_at"] = time.monotonic()
            self.frames.append(frame)
            return frame

    async def until(self, t: str, timeout: float = 15, **match: Any) -> dict:
        """Read frames until one of type `t` (matching `match`) arrives."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {t!r} frame; got {[f.get('t') for f in self.frames[-20:]]}")
            frame = await self.recv(remaining)
            if frame.get("t") == t and all(frame.get(k) == v for k, v in match.items()):
                return frame

    async def drain(self, quiet: float = 0.3) -> list[dict]:
        """Read until the socket is quiet for `quiet` seconds."""
        got = []
        while True:
            try:
                got.append(await self.recv(quiet))
            except (TimeoutError, asyncio.TimeoutError):
                return got

    async def closed(self, timeout: float = 10) -> tuple[int | None, list[dict]]:
        """Read until the server closes; returns the close code and the frames seen."""
        seen = []
        try:
            while True:
                seen.append(await self.recv(timeout))
        except websockets.ConnectionClosed as exc:
            return (exc.rcvd.code if exc.rcvd else None), seen

    def of_turn(self, turn: str) -> list[dict]:
        return [f for f in self.frames if f.get("turn") == turn]

    async def close(self) -> None:
        await self.ws.close()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# ---------------------------------------------------------------- any dialect
#
# The hardening tests speak all three dialects. These helpers know, per dialect, how to ask
# "are you still there?" and how to read an error's code, so a test can stay dialect-blind.

DIALECTS = ("astrbot", "olv", "neko")


def ping_frame(dialect: str, payload: str = "alive") -> dict:
    """The dialect's liveness probe, echoing `payload` where the dialect can: astrbot `ping`,
    OLV `delete-history` (its answer repeats `history_uid`), N.E.K.O `ping` (a bare `pong`)."""
    return {
        "astrbot": {"ct": "live", "t": "ping", "data": payload},  # live even on a ct=chat socket
        "olv": {"type": "delete-history", "history_uid": payload},
        "neko": {"action": "ping"},
    }[dialect]


def is_pong(dialect: str, frame: dict, payload: str = "alive") -> bool:
    if dialect == "astrbot":
        return frame.get("t") == "pong" and frame.get("data") == payload
    if dialect == "olv":
        return frame.get("type") == "history-deleted" and frame.get("history_uid") == payload
    return frame.get("type") == "pong"


def error_code(dialect: str, frame: dict) -> str | None:
    """The code of an error frame, "" for an error frame without one, None for other frames.

    astrbot: `{"t": "error", "code"}` (also chat mode's `{"ct": "chat", "t": "error", "code"}`);
    OLV: `{"type": "error", "code"}`; N.E.K.O: `{"type": "status", "message": "<JSON with code>"}`.
    """
    if frame.get("t") == "error":
        return str(frame.get("code") or "")
    if dialect == "olv" and frame.get("type") == "error":
        return str(frame.get("code") or "")
    if dialect == "neko" and frame.get("type") == "status":
        try:
            status = json.loads(frame.get("message") or "")
        except (TypeError, ValueError):
            return ""
        return str(status.get("code") or "") if isinstance(status, dict) else ""
    return None


class LightClient:
    """A socket for long hostile runs: keeps counts, not frames, so the client's memory stays flat."""

    def __init__(self, ws: Any, dialect: str) -> None:
        self.ws = ws
        self.dialect = dialect
        self.received = 0
        self.errors: dict[str, int] = {}  # code -> count ("" = an error frame without a code)
        self.pings = 0

    @classmethod
    async def open(cls, url: str, dialect: str) -> LightClient:
        ws = await websockets.connect(url, max_size=64 * 1024 * 1024, open_timeout=10, compression=None)
        return cls(ws, dialect)

    async def send_raw(self, data: str | bytes) -> None:
        await self.ws.send(data)

    def _note(self, raw: str | bytes) -> dict | None:
        self.received += 1
        if isinstance(raw, bytes):
            return None
        frame = json.loads(raw)
        if not isinstance(frame, dict):
            return None
        code = error_code(self.dialect, frame)
        if code is not None:
            self.errors[code] = self.errors.get(code, 0) + 1
        return frame

    async def alive(self, timeout: float = 20) -> bool:
        """Send the dialect's ping and read (counting everything before it) until its answer."""
        self.pings += 1
        payload = f"alive-{self.pings}"
        await self.ws.send(json.dumps(ping_frame(self.dialect, payload)))
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                frame = self._note(await asyncio.wait_for(self.ws.recv(), remaining))
            except TimeoutError:
                return False
            if frame is not None and is_pong(self.dialect, frame, payload):
                return True

    async def close(self) -> None:
        await self.ws.close()
