"""Microphone load for the capacity test, run in its own process.

N WebSocket sessions stream PCM16 16 kHz in binary frames (20 or 60 ms), paced in real time,
the way a browser streams a microphone. The server (in the parent process) must not share a GIL with
the load, so this runs under `multiprocessing` (spawn) and imports neither AstrBot nor the plugin.

Cheap by construction, because it competes for the same 2 cores as the server:
- one ticker task for all sessions (not one timer per session): every 5 ms it writes the next
  frame of the sessions whose turn it is. Sessions are spread over the frame period (as
  independent browsers are; a frame-synchronous burst of N frames never happens in real use);
- frames are pre-built once as complete, masked WebSocket binary frames (RFC 6455 client
  frames) and written straight to each connection's transport: no per-frame masking, framing
  or coroutine. The server sees exactly what a browser would send;
- websockets still runs the connection (handshake, reading, pings, close).

Each session also sends a `ping` every 2 s on the same socket, behind its audio: the pong's
round trip measures how far the server's receive loop is behind that stream.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from typing import Any

FRAME_MS = 20  # default; `params["frame_ms"]` overrides
TICK_MS = 5  # the ticker's step: sessions are spread over the frame period in 5 ms slots
PING_EVERY_S = 2.0
_MASK = bytes((0x5A, 0x3C, 0x96, 0x0F))


def ws_client_frame(payload: bytes, opcode: int = 0x2) -> bytes:
    """One complete, masked client frame (FIN set)."""
    import numpy as np

    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        header = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    data = np.frombuffer(payload, np.uint8)
    mask = np.resize(np.frombuffer(_MASK, np.uint8), n)
    return header + _MASK + (data ^ mask).tobytes()


def frame_bytes(frame_ms: int) -> int:
    return 16000 * 2 * frame_ms // 1000


def build_stream(pcm: bytes, frame_ms: int = FRAME_MS) -> list[bytes]:
    """The cyclic microphone stream, cut in `frame_ms` frames and pre-framed for the wire."""
    size = frame_bytes(frame_ms)
    usable = len(pcm) - len(pcm) % size
    return [ws_client_frame(pcm[i : i + size]) for i in range(0, usable, size)]


class _Session:
    __slots__ = ("counts", "error", "offset", "pongs", "reader", "transport", "ws")

    def __init__(self, ws: Any, offset: int) -> None:
        self.ws = ws
        self.transport = ws.transport
        self.offset = offset
        self.reader: asyncio.Task | None = None
        self.pongs: list[tuple[float, float]] = []  # (sent at, round trip ms)
        self.counts: dict[str, int] = {}
        self.error: str | None = None


async def _read(session: _Session) -> None:
    try:
        async for raw in session.ws:
            if isinstance(raw, bytes):
                continue
            frame = json.loads(raw)
            kind = frame.get("t", "?")
            if kind == "error":
                kind = f"error:{frame.get('code')}"
            session.counts[kind] = session.counts.get(kind, 0) + 1
            if kind == "pong":
                try:
                    sent = float(frame.get("data"))
                except (TypeError, ValueError):
                    continue
                session.pongs.append((sent, (time.monotonic() - sent) * 1000))
    except Exception as exc:  # noqa: BLE001 (the connection dropped: reported, not fatal)
        session.error = f"{type(exc).__name__}: {exc}"


async def _connect(url: str, offset: int, limit: asyncio.Semaphore) -> _Session:
    import websockets

    async with limit:
        ws = await websockets.connect(url, max_size=64 * 1024 * 1024, open_timeout=60, ping_interval=None)
        hello = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if hello.get("t") != "hello":
            raise RuntimeError(f"expected hello, got {hello}")
    session = _Session(ws, offset)
    session.reader = asyncio.create_task(_read(session))
    return session


async def _run(params: dict, pipe: Any) -> None:
    frame_ms = int(params.get("frame_ms", FRAME_MS))
    frames = build_stream(params["pcm"], frame_ms)
    period = frame_ms / 1000
    slots = max(1, frame_ms // TICK_MS)  # session i sends in slot i % slots of each frame period
    step = period / slots
    rng = random.Random(7)
    limit = asyncio.Semaphore(params.get("connect_concurrency", 16))
    t_connect = time.monotonic()
    results = await asyncio.gather(
        *(_connect(url, rng.randrange(len(frames)), limit) for url in params["urls"]), return_exceptions=True
    )
    sessions = [s for s in results if isinstance(s, _Session)]
    failures = [repr(e) for e in results if not isinstance(e, _Session)]
    pipe.send({"event": "connected", "sessions": len(sessions), "failures": failures[:5],
               "connect_s": time.monotonic() - t_connect})  # fmt: skip
    groups = [sessions[k::slots] for k in range(slots)]
    cpu0 = time.process_time()
    start = time.monotonic()
    lateness: list[tuple[float, float]] = []  # (tick due at, ms late)
    sent = 0
    tick = 0
    ping_every = max(1, int(PING_EVERY_S / period))  # in frames
    pipe.send({"event": "streaming", "at": start})
    stop_at = start + params["duration_s"]
    while True:
        due = start + tick * step
        now = time.monotonic()
        if due > now:
            await asyncio.sleep(due - now)
        now = time.monotonic()
        if now >= stop_at or pipe.poll():
            break
        lateness.append((due, (now - due) * 1000))
        n, slot = divmod(tick, slots)  # frame number, slot within the frame period
        for j, s in enumerate(groups[slot]):
            if s.transport.is_closing():
                continue
            s.transport.write(frames[(n + s.offset) % len(frames)])
            sent += 1
            if (n + j) % ping_every == 0:  # each session pings every 2 s, staggered
                s.transport.write(
                    ws_client_frame(json.dumps({"t": "ping", "data": f"{time.monotonic():.6f}"}).encode(), 0x1)
                )
        tick += 1
    elapsed = time.monotonic() - start
    cpu = time.process_time() - cpu0
    await asyncio.gather(*(s.ws.close() for s in sessions), return_exceptions=True)
    for s in sessions:
        if s.reader:
            s.reader.cancel()
    counts: dict[str, int] = {}
    for s in sessions:
        for k, v in s.counts.items():
            counts[k] = counts.get(k, 0) + v
    pipe.send({
        "event": "done",
        "elapsed_s": elapsed,
        "frames_sent": sent,
        "frames_expected": int(elapsed / period) * len(sessions),
        "frame_ms": frame_ms,
        "tick_lateness_ms": lateness,
        "pongs": [p for s in sessions for p in s.pongs],
        "counts": counts,
        "dropped": sum(1 for s in sessions if s.error),
        "client_cpu_s": cpu,
        "pid": os.getpid(),
    })  # fmt: skip


def main(params: dict, pipe: Any) -> None:
    """Process entry point: `params` = {urls, pcm, duration_s, connect_concurrency, frame_ms}."""
    try:
        asyncio.run(_run(params, pipe))
    except Exception as exc:  # noqa: BLE001 (reported to the parent)
        pipe.send({"event": "failed", "error": f"{type(exc).__name__}: {exc}"})
