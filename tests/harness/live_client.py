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
