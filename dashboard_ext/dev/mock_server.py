"""A stand-in Live server for front-end work: serves ../dist at /live/ and fakes /api/v1/live/ws.

Not the plugin. It speaks enough of the protocol to drive the page by hand or from a
headless browser: hello, a crude energy VAD over the binary PCM16 frames, text_input,
streamed deltas, per-sentence WAV `response` clips (tones, or espeak-ng speech when
installed), metrics, interrupt / stop_play / playback_report, and live rooms (`room=`,
`role=`, `audio=`, `room` snapshots, `set_audio`, `viewer_event` answered at once).

    python dashboard_ext/dev/mock_server.py --port 8765   # token (or api_key): "dev"
    open http://127.0.0.1:8765/live/?token=dev
    open http://127.0.0.1:8765/live/?token=dev&room=stream
    open http://127.0.0.1:8765/live/overlay?room=stream&token=dev
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import math
import shutil
import struct
import sys
import subprocess
import tempfile
import time
import wave
from pathlib import Path

from aiohttp import WSMsgType, web

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the plugin root, for live.audio
from live.audio.wav import pcm16_to_wav  # noqa: E402

DIST = Path(__file__).resolve().parent.parent / "dist"
REPLY = "Sure. This is the mock server talking. Every sentence arrives as its own clip, so you can interrupt me at any time."


def tone_wav(text: str, rate: int = 24000) -> bytes:
    """A short two-tone clip whose length follows the text (fallback when espeak-ng is missing)."""
    n = int(rate * min(0.25 + 0.045 * len(text), 4.0))
    frames = b"".join(
        struct.pack("<h", int(6000 * math.sin(2 * math.pi * (220 + 110 * ((i // 2400) % 2)) * i / rate)))
        for i in range(n)
    )
    return pcm16_to_wav(frames, rate)


def speech_wav(text: str) -> bytes:
    if not shutil.which("espeak-ng"):
        return tone_wav(text)
    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        subprocess.run(["espeak-ng", "-w", f.name, text], check=True, capture_output=True)
        return Path(f.name).read_bytes()


def split_sentences(text: str) -> list[str]:
    out, cur = [], ""
    for ch in text:
        cur += ch
        if ch in ".!?。！？":
            out.append(cur.strip())
            cur = ""
    return out + ([cur.strip()] if cur.strip() else [])


class Stage:
    """Where turns run: one session's own, or a live room's, shared by its members."""

    def __init__(self, args: argparse.Namespace, room: str | None = None):
        self.args, self.room = args, room
        self.members: list[Session] = []
        self.turn_no = 0
        self.task: asyncio.Task | None = None
        self.turn_id: str | None = None
        self.state = "listening"
        self.queue = 0
        self.playing_until = 0.0  # the members are still playing the last turn's audio until then

    async def emit(self, t: str, **fields) -> None:
        """Send a frame of the session to every member (audio only to those who want it)."""
        if t == "state":
            self.state = fields["data"]["state"]
        for m in list(self.members):
            if t != "response" or m.audio:
                await m.send(t, **fields)
        if t == "state":
            await self.snapshot()

    async def snapshot(self) -> None:
        if self.room is None:
            return
        members = {role: sum(1 for m in self.members if m.role == role) for role in ("streamer", "bridge", "listener")}
        for m in list(self.members):
            await m.send("room", data={"name": self.room, "state": self.state, "queue": self.queue,
                                       "members": members, "you": {"role": m.role, "audio": m.audio}})

    def start_turn(self, user_text: str, viewers: list[dict] | None = None) -> None:
        self.cancel(report=False)
        self.turn_no += 1
        self.turn_id = f"t{self.turn_no}"
        self.task = asyncio.create_task(self.run_turn(self.turn_id, user_text, viewers))

    def cancel(self, report: bool = True) -> None:
        running = self.task is not None and not self.task.done()
        if running:
            self.task.cancel()
        if report and self.turn_id and (running or time.monotonic() < self.playing_until):
            self.playing_until = 0.0
            asyncio.create_task(self.interrupted(self.turn_id))

    async def interrupted(self, turn: str) -> None:
        await self.emit("stop_play", turn=turn)
        await self.emit("end", turn=turn, data={"interrupted": True, "text": ""})
        await self.emit("state", data={"state": "listening"})

    async def run_turn(self, turn: str, user_text: str, viewers: list[dict] | None) -> None:
        t0 = time.monotonic()
        ms = lambda: round((time.monotonic() - t0) * 1000)  # noqa: E731
        timeline = {"speech_end": 0}
        await self.emit("state", data={"state": "thinking"})
        await asyncio.sleep(self.args.stt_delay)
        timeline["stt_done"] = ms()
        user = {"text": user_text, "ts": time.time()} | ({"viewers": viewers} if viewers else {})
        await self.emit("user_msg", turn=turn, data=user)
        await asyncio.sleep(self.args.llm_delay)
        timeline["llm_first_token"] = ms()
        seq = 0
        self.playing_until = time.monotonic()
        for sentence in split_sentences(REPLY):
            for word in sentence.split(" "):
                await self.emit("bot_delta_chunk", turn=turn, data={"text": word + " "})
                await asyncio.sleep(0.04)
            timeline.setdefault("first_sentence", ms())
            wav = await asyncio.to_thread(speech_wav, sentence)
            timeline.setdefault("first_audio", ms())
            if seq == 0:
                await self.emit("state", data={"state": "speaking"})
            seq += 1
            await self.emit("bot_text_chunk", turn=turn, seq=seq, data={"text": sentence})
            with wave.open(io.BytesIO(wav)) as w:
                dur = round(w.getnframes() / w.getframerate() * 1000)
            self.playing_until = max(self.playing_until, time.monotonic()) + dur / 1000
            await self.emit("response", turn=turn, seq=seq, format="wav", duration_ms=dur,
                            data=base64.b64encode(wav).decode())
        timeline["turn_end"] = ms()
        await self.emit("end", turn=turn, data={"interrupted": False, "text": REPLY})
        await self.emit("metrics", turn=turn, data={"timeline": timeline})
        await self.emit("state", data={"state": "listening"})


ROOMS: dict[str, Stage] = {}


class Session:
    def __init__(self, ws: web.WebSocketResponse, stage: Stage, role: str = "streamer", audio: bool = True):
        self.ws, self.stage, self.role, self.audio = ws, stage, role, audio
        self.speaking = False
        self.silent_ms = 0
        self.voiced_ms = 0

    async def send(self, t: str, **fields) -> None:
        if not self.ws.closed:
            await self.ws.send_str(json.dumps({"t": t, **fields}, ensure_ascii=False))

    async def on_pcm(self, data: bytes) -> None:
        n = len(data) // 2
        if n == 0 or self.role != "streamer":
            return
        samples = struct.unpack(f"<{n}h", data[: n * 2])
        rms = math.sqrt(sum(s * s for s in samples) / n) / 32768
        frame_ms = n / 16
        if rms > self.stage.args.vad_threshold:
            self.voiced_ms += frame_ms
            self.silent_ms = 0
            if not self.speaking and self.voiced_ms >= 60:
                self.speaking = True
                await self.stage.emit("vad", data={"state": "speech_start"})
                self.stage.cancel()
        elif self.speaking:
            self.silent_ms += frame_ms
            if self.silent_ms >= 600:
                self.speaking = False
                heard, self.voiced_ms = self.voiced_ms, 0
                await self.stage.emit("vad", data={"state": "speech_end"})
                self.stage.start_turn(f"(about {heard / 1000:.1f} s of speech)")
        else:
            self.voiced_ms = 0

    async def on_viewer(self, frame: dict) -> None:
        """A viewer's chat line: answered at once (the real server queues and merges them)."""
        user = frame.get("user") or {"name": frame.get("from_name") or "viewer"}
        viewer = {"name": str(user.get("name", "viewer"))[:32], "kind": frame.get("kind", "danmaku"),
                  "text": str(frame.get("text", ""))[:200], "value": frame.get("value", 0)}
        prompt = f'[Live chat] Viewer "{viewer["name"]}" says: {viewer["text"]}'
        self.stage.start_turn(prompt, [viewer])


async def ws_handler(request: web.Request) -> web.WebSocketResponse:
    args = request.app["args"]
    q = request.query
    ws = web.WebSocketResponse(heartbeat=20)
    await ws.prepare(request)
    if q.get("token") != args.token and not (q.get("api_key") == args.token and q.get("username")):
        await ws.send_str(json.dumps({"t": "error", "code": "UNAUTHORIZED", "data": "bad token"}))
        await ws.close(code=1008)
        return ws
    room = q.get("room")
    role = q.get("role", "streamer") if room else "streamer"
    stage = ROOMS.setdefault(room, Stage(args, room)) if room else Stage(args)
    s = Session(ws, stage, role, q.get("audio", "1") != "0")
    stage.members.append(s)
    await s.send("hello", data={
        "protocol": "astrbot-live", "version": 1, "session_id": "mock", "username": q.get("username", "astrbot"),
        "conversation_id": f"room-{room}" if room else q.get("conversation_id") or "mock-conversation",
        "server_vad": True, "input_audio": {"format": "pcm16", "sample_rate": 16000},
        "output_audio": {"format": "wav", "sample_rate": None}, "features": ["mock"] + (["rooms"] if room else []),
        **({"room": {"name": room, "role": role, "audio": s.audio}} if room else {})})
    await stage.snapshot()
    pcm_bytes = 0
    recorded = bytearray()
    try:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                pcm_bytes += len(msg.data)
                if args.record:
                    recorded += msg.data
                await s.on_pcm(msg.data)
            elif msg.type == WSMsgType.TEXT:
                frame = json.loads(msg.data)
                print("recv", {k: v for k, v in frame.items() if k != "data"} | {"pcm_bytes": pcm_bytes}, flush=True)
                t = frame.get("t")
                if t == "text_input" and role == "bridge":
                    await s.on_viewer(frame)
                elif t == "text_input":
                    stage.start_turn(frame.get("text", ""))
                elif t == "viewer_event":
                    await s.on_viewer(frame)
                elif t == "interrupt":
                    stage.cancel()
                elif t == "set_audio":
                    s.audio = bool(frame.get("enabled"))
                    await s.send("configured", data={"receive_audio": s.audio})
                    await stage.snapshot()
                elif t == "ping":
                    await s.send("pong", data=frame.get("data"))
    finally:
        stage.members.remove(s)
        if stage.members:
            await stage.snapshot()
        else:
            stage.cancel(report=False)
            ROOMS.pop(room or "", None)
    if args.record and recorded:
        with wave.open(args.record, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes(bytes(recorded))
    return ws


def make_app(args: argparse.Namespace) -> web.Application:
    app = web.Application()
    app["args"] = args
    app.router.add_get("/api/v1/live/ws", ws_handler)
    app.router.add_get("/live", lambda r: web.HTTPFound("/live/"))
    app.router.add_get("/live/", lambda r: web.FileResponse(DIST / "index.html"))
    app.router.add_get("/live/overlay", lambda r: web.FileResponse(DIST / "overlay.html"))
    app.router.add_static("/live/", DIST)
    return app


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--token", default="dev")
    p.add_argument("--stt-delay", type=float, default=0.15)
    p.add_argument("--llm-delay", type=float, default=0.35)
    p.add_argument("--vad-threshold", type=float, default=0.02)
    p.add_argument("--record", help="write the PCM received on the last connection to this WAV")
    a = p.parse_args()
    web.run_app(make_app(a), host=a.host, port=a.port, print=None)
