"""A local OpenAI-compatible server for chat, transcription and speech.

Real HTTP on 127.0.0.1 (aiohttp). Replies, transcripts and latencies are
scripted per test; every request is recorded, including chat streams the
client closed before the end (what a barge-in must cause).
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
import wave
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from aiohttp import web

from live.audio.wav import pcm16_to_wav

TTS_RATE = 24000
MS_PER_CHAR = 45  # synthesized speech grows with the text, like real speech


@lru_cache(maxsize=512)
def tone_wav(text: str, rate: int = TTS_RATE) -> bytes:
    """A WAV of a soft tone, about MS_PER_CHAR ms per character of `text` (cached: it runs on the server's loop)."""
    n = max(1, int(rate * MS_PER_CHAR * max(len(text), 1) / 1000))
    freq = 220 + (sum(map(ord, text)) % 200)
    samples = np.trunc(6000 * np.sin(2 * np.pi * freq * np.arange(n) / rate)).astype("<i2")
    return pcm16_to_wav(samples.tobytes(), rate)


@dataclass
class ScriptedReply:
    text: str
    ttft: float = 0.02
    interval: float = 0.005
    fail_after: int | None = None  # tokens sent before the stream breaks with a server error event
    stall_after: int | None = None  # tokens sent before the stream goes silent for `stall_s`
    stall_s: float = 0.0
    tool_call: tuple[str, dict] | None = None  # (name, arguments): after the text, the model calls a tool


@dataclass
class ChatRecord:
    messages: list[dict]
    stream: bool
    started: float
    finished: float | None = None
    closed_early: bool = False
    failed: bool = False  # the stream ended with a scripted server error
    tokens_sent: int = 0
    token_at: list[float] = field(default_factory=list)  # monotonic time each token was written


@dataclass
class FakeProviders:
    """State the tests script; the server reads it on each request."""

    host: str = "127.0.0.1"
    port: int = 0
    replies: deque = field(default_factory=deque)
    transcripts: deque = field(default_factory=deque)
    default_ttft: float = 0.02
    default_interval: float = 0.005
    stt_delay: float = 0.0
    tts_delay: float = 0.0
    tts_fail_containing: str | None = None
    chat_fail: bool = False
    stt_fail: bool = False  # transcriptions answer 500
    default_transcript: str = ""  # what STT hears when no transcript is scripted (soak: every utterance a turn)
    heard_by_length: list[tuple[float, str]] = field(default_factory=list)
    """When set (and no transcript is scripted): (seconds, text) in rising order, an upload at most that
    long hears that text, so a cut-off utterance hears only the words it holds; longer ones the last text."""
    default_reply: str | None = None  # what the LLM streams when no reply is scripted (else an echo)
    title_reply: str = "Live chat"  # the answer to non-streaming side requests ("<None>": AstrBot keeps no title)
    stt_started: list[float] = field(default_factory=list)  # monotonic time each transcription request arrived
    keep_records: bool = True  # False (soak): count requests in `served` instead of keeping every record
    served: dict[str, int] = field(default_factory=lambda: {"chat": 0, "stt": 0, "tts": 0})
    chats: list[ChatRecord] = field(default_factory=list)
    transcriptions: list[dict] = field(default_factory=list)
    speeches: list[dict] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def streams(self) -> list[ChatRecord]:
        """The streaming chat requests: the agent's turns."""
        return [c for c in self.chats if c.stream]

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    # ---------------------------------------------------------- scripting

    def reset(self) -> None:
        with self._lock:
            self.replies.clear()
            self.transcripts.clear()
            self.chats.clear()
            self.transcriptions.clear()
            self.speeches.clear()
            self.default_ttft, self.default_interval = 0.02, 0.005
            self.stt_delay = self.tts_delay = 0.0
            self.tts_fail_containing = None
            self.chat_fail = self.stt_fail = False
            self.default_transcript, self.default_reply = "", None
            self.heard_by_length = []
            self.title_reply = "Live chat"
            self.stt_started.clear()
            self.served = dict.fromkeys(self.served, 0)

    def script_reply(
        self,
        text: str,
        *,
        ttft: float | None = None,
        interval: float | None = None,
        fail_after: int | None = None,
        stall_after: int | None = None,
        stall_s: float = 0.0,
        tool_call: tuple[str, dict] | None = None,
    ) -> None:
        """The next streamed reply; `fail_after`/`stall_after` N tokens break or stall it mid-stream;
        `tool_call` (name, arguments) ends it with a call of that tool (the agent's next request
        takes the next reply)."""
        with self._lock:
            self.replies.append(
                ScriptedReply(text, ttft if ttft is not None else self.default_ttft,
                              interval if interval is not None else self.default_interval,
                              fail_after, stall_after, stall_s, tool_call)
            )  # fmt: skip

    def script_transcript(self, text: str) -> None:
        with self._lock:
            self.transcripts.append(text)

    def _next_reply(self, messages: list[dict]) -> ScriptedReply:
        with self._lock:
            if self.replies:
                return self.replies.popleft()
            if self.default_reply is not None:
                return ScriptedReply(self.default_reply, self.default_ttft, self.default_interval)
        last_user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
        content = last_user.get("content")
        if isinstance(content, list):
            content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
        return ScriptedReply(f"You said: {content}.", self.default_ttft, self.default_interval)

    # ---------------------------------------------------------- handlers

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        record = ChatRecord(messages=body.get("messages", []), stream=bool(body.get("stream")), started=time.monotonic())
        self.served["chat"] += 1
        if self.keep_records:
            self.chats.append(record)
        if self.chat_fail:
            return web.json_response({"error": {"message": "scripted failure"}}, status=500)
        if not record.stream:  # side requests such as AstrBot's conversation-title generator
            reply = ScriptedReply(self.title_reply, self.default_ttft)
        else:
            reply = self._next_reply(record.messages)
        tokens = _tokens(reply.text)
        if not record.stream:
            await asyncio.sleep(reply.ttft)
            record.finished = time.monotonic()
            record.tokens_sent = len(tokens)
            return web.json_response(_completion(reply.text))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        try:
            await asyncio.sleep(reply.ttft)
            for i, token in enumerate(tokens):
                if i:
                    await asyncio.sleep(reply.interval)
                if i == reply.stall_after:
                    await asyncio.sleep(reply.stall_s)
                if i == reply.fail_after:  # what an upstream failure looks like in an OpenAI stream
                    await response.write(_sse({"error": {"message": "scripted mid-stream failure", "type": "server_error"}}))
                    record.failed = True
                    record.finished = time.monotonic()
                    return response
                await response.write(_sse(_chunk({"content": token})))
                record.tokens_sent += 1
                record.token_at.append(time.monotonic())
            if reply.tool_call is not None:
                name, arguments = reply.tool_call
                call = {"index": 0, "id": f"call_{len(self.chats)}", "type": "function",
                        "function": {"name": name, "arguments": json.dumps(arguments)}}  # fmt: skip
                await response.write(_sse(_chunk({"tool_calls": [call]})))
                await response.write(_sse(_chunk({}, finish="tool_calls")))
                await response.write(b"data: [DONE]\n\n")
                record.finished = time.monotonic()
                return response
            await response.write(_sse(_chunk({}, finish="stop")))
            await response.write(b"data: [DONE]\n\n")
            record.finished = time.monotonic()
        except (asyncio.CancelledError, ConnectionResetError, ConnectionError):
            record.closed_early = True
            record.finished = time.monotonic()
            raise
        return response

    async def transcribe(self, request: web.Request) -> web.Response:
        started = time.monotonic()
        form = await request.post()
        upload = form.get("file")
        audio = upload.file.read() if hasattr(upload, "file") else b""
        self.served["stt"] += 1
        if self.keep_records:
            self.stt_started.append(started)
        await asyncio.sleep(self.stt_delay)
        if self.stt_fail:
            return web.json_response({"error": {"message": "scripted STT failure"}}, status=500)
        with self._lock:
            if self.transcripts:
                text = self.transcripts.popleft()
            elif self.heard_by_length:
                seconds = _wav_seconds(audio)
                text = next((t for limit, t in self.heard_by_length if seconds <= limit), self.heard_by_length[-1][1])
            else:
                text = self.default_transcript
        if self.keep_records:
            self.transcriptions.append(
                {"bytes": len(audio), "text": text, "wav": audio[:4] == b"RIFF", "started": started,
                 "finished": time.monotonic()}
            )  # fmt: skip
        return web.json_response({"text": text})

    async def speech(self, request: web.Request) -> web.Response:
        body = await request.json()
        text = str(body.get("input", ""))
        record = {"input": text, "at": time.monotonic()}
        self.served["tts"] += 1
        if self.keep_records:
            self.speeches.append(record)
        await asyncio.sleep(self.tts_delay)
        if self.tts_fail_containing and self.tts_fail_containing in text:
            return web.json_response({"error": {"message": "scripted TTS failure"}}, status=500)
        body = tone_wav(text)
        record["done"] = time.monotonic()
        return web.Response(body=body, content_type="audio/wav")

    async def models(self, _request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "fake-model", "object": "model"}]})

    # ---------------------------------------------------------- server

    async def start(self) -> web.AppRunner:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/audio/transcriptions", self.transcribe)
        app.router.add_post("/v1/audio/speech", self.speech)
        app.router.add_get("/v1/models", self.models)
        runner = web.AppRunner(app, handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return runner


def _tokens(text: str) -> list[str]:
    """Word-sized tokens that keep their spaces, as LLM streams do."""
    out, word = [], ""
    for ch in text:
        word += ch
        if ch in " ，。,.!?！？" or "\u4e00" <= ch <= "\u9fff":
            out.append(word)
            word = ""
    if word:
        out.append(word)
    return out


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict:
    return {
        "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
        "model": "fake-model", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }  # fmt: skip


def _completion(text: str) -> dict:
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": "fake-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }  # fmt: skip


def _sse(payload: dict) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


def _wav_seconds(wav: bytes) -> float:
    """How long a WAV upload is (0 when it is no WAV)."""
    try:
        with wave.open(io.BytesIO(wav)) as w:
            return w.getnframes() / w.getframerate()
    except (wave.Error, EOFError):
        return 0.0
