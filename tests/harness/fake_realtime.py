"""A local server that speaks the OpenAI Realtime WebSocket event protocol.

Real WebSockets on 127.0.0.1 (aiohttp, random port). Tests script each answer
(audio, transcript, latency, pace), tool calls, refusals, errors, refused
handshakes, mid-answer disconnects and session time limits. When a session
hands turn detection to the model, an energy VAD commits the turn after
`vad_silence_ms` of quiet, answers by itself, and cancels an answer the user
talks over (reason `turn_detected`). Everything the client sends is recorded
with its arrival time: handshakes, `session.update` payloads, appended audio,
commits, truncations with `audio_end_ms`, cancels, tool results, items, closes.

Example:
    >>> fake = FakeRealtime(api_key="sk-test")
    >>> await fake.start()
    >>> fake.script(ScriptedResponse("Hi there.", first_delay=0.05))
    >>> ...  # connect to fake.url, send response.create, read deltas
    >>> fake.truncations[0].audio_end_ms
    >>> await fake.stop()
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import itertools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from aiohttp import WSMsgType, web

RATE = 24000
MS_PER_CHAR = 60  # the default tone lasts about as long as speaking the transcript would


def tone_pcm(seconds: float, rate: int = RATE, freq: float = 330.0) -> bytes:
    """A soft sine tone as PCM16 mono: real, audible audio with a known length."""
    n = max(1, int(rate * seconds))
    return np.trunc(6000 * np.sin(2 * np.pi * freq * np.arange(n) / rate)).astype("<i2").tobytes()


@dataclass
class ScriptedToolCall:
    name: str
    arguments: str  # JSON text, streamed in a few deltas


@dataclass
class ScriptedResponse:
    """One answer to the next `response.create`."""

    transcript: str = ""
    audio: bytes | None = None  # PCM16 24 kHz; None = a tone about MS_PER_CHAR per character
    first_delay: float = 0.0  # model latency: seconds before the first delta
    chunk_ms: int = 100  # audio per delta
    pace: float = 0.0  # wall seconds per second of audio between deltas (1.0 = real time, 0 = at once)
    tool_call: ScriptedToolCall | None = None  # answer with a function call instead of speech
    refuse_after_chunks: int | None = None  # cut off by the "content filter" after N chunks
    fail: tuple[str, str] | None = None  # response.done status=failed with (code, message)
    error: tuple[str, str, str] | None = None  # an `error` event (type, code, message) instead of an answer
    disconnect_after_chunks: int | None = None  # drop the TCP connection after N chunks
    rate_limits: bool = True  # send rate_limits.updated after response.done

    def pcm(self) -> bytes:
        if self.audio is not None:
            return self.audio
        return tone_pcm(max(0.2, len(self.transcript) * MS_PER_CHAR / 1000))


@dataclass
class Handshake:
    at: float  # monotonic
    connection: int
    headers: dict[str, str]
    query: dict[str, str]
    accepted: bool


@dataclass
class Truncation:
    at: float
    connection: int
    item_id: str
    content_index: int
    audio_end_ms: int
    sent_audio_ms: float  # how much audio of that item the server had sent


@dataclass
class Received:
    at: float
    connection: int
    event: dict


@dataclass
class _Connection:
    number: int
    ws: web.WebSocketResponse
    request: web.Request
    session: dict = field(default_factory=dict)
    buffer: bytearray = field(default_factory=bytearray)
    speaking: bool = False
    silence_ms: float = 0.0
    cancel_reason: str = "client_cancelled"
    response: asyncio.Task | None = None
    sent_audio_ms: dict[str, float] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class FakeRealtime:
    """State the tests script; the server reads it on each event. Records are safe to read from any thread."""

    host: str = "127.0.0.1"
    port: int = 0
    api_key: str | None = None  # when set, other keys are refused
    auth_failure: Literal["http", "event"] = "http"  # refuse with HTTP 401, or accept then send invalid_api_key
    handshake_status: int | None = None  # refuse every handshake with this HTTP status (429, 500, ...)
    naming: Literal["ga", "beta"] = "ga"  # which event names the server emits
    created_delay: float = 0.0  # seconds before session.created
    update_delay: float = 0.0  # seconds before session.updated
    session_limit_s: float | None = None  # after this, `session_expired` then close 1001
    speech_events: bool = False  # with our turn detection: speech_started at the first append, stopped at commit
    vad_threshold: float = 500.0  # with the model's turn detection: RMS (of int16) that counts as speech
    vad_silence_ms: float = 500.0  # ... and how much quiet after speech ends the turn (then it answers)
    input_transcripts: deque = field(default_factory=deque)  # what the model hears at each commit
    responses: deque = field(default_factory=deque)
    default_response: ScriptedResponse = field(default_factory=lambda: ScriptedResponse("Okay."))

    handshakes: list[Handshake] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    session_updates: list[dict] = field(default_factory=list)
    truncations: list[Truncation] = field(default_factory=list)
    cancels: list[Received] = field(default_factory=list)
    tool_results: list[dict] = field(default_factory=list)
    items: list[dict] = field(default_factory=list)  # conversation.item.create bodies
    deleted: list[str] = field(default_factory=list)
    commits: list[Received] = field(default_factory=list)
    appended_bytes: dict[int, int] = field(default_factory=dict)  # per connection
    closes: list[tuple[float, int]] = field(default_factory=list)
    first_delta_at: list[float] = field(default_factory=list)  # monotonic time of each answer's first audio delta

    _lock: threading.Lock = field(default_factory=threading.Lock)
    _numbers: Any = field(default_factory=lambda: itertools.count(1))
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _connections: dict[int, _Connection] = field(default_factory=dict)
    _runner: web.AppRunner | None = None

    # ---------------------------------------------------------- scripting

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/v1/realtime"

    def script(self, *responses: ScriptedResponse) -> None:
        with self._lock:
            self.responses.extend(responses)

    def hear(self, *transcripts: str) -> None:
        """What the model transcribes at the next commits."""
        with self._lock:
            self.input_transcripts.extend(transcripts)

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    def received_types(self, connection: int | None = None) -> list[str]:
        with self._lock:
            return [r.event.get("type", "") for r in self.received if connection is None or r.connection == connection]

    async def drop_all(self, code: int = 1011, reason: str = "scripted drop") -> None:
        """Close every open connection from the server side (a provider restart)."""
        for conn in list(self._connections.values()):
            await conn.ws.close(code=code, message=reason.encode())

    async def expire(self, connection: int) -> None:
        """What a provider does at its session time limit: an error event, then close 1001."""
        conn = self._connections.get(connection)
        if conn is None:
            return
        await self._send(
            conn, self._error("invalid_request_error", "session_expired", "Your session hit the maximum duration.")
        )
        await conn.ws.close(code=1001, message=b"session expired")

    # ---------------------------------------------------------- server

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/v1/realtime", self._handle)
        self._runner = web.AppRunner(app, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        for conn in list(self._connections.values()):
            if conn.response is not None:
                conn.response.cancel()
            await conn.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self._ids)}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        number = next(self._numbers)
        headers = {k: v for k, v in request.headers.items()}
        bad_key = self.api_key is not None and headers.get("Authorization") != f"Bearer {self.api_key}"
        refuse = self.handshake_status or (401 if bad_key and self.auth_failure == "http" else None)
        with self._lock:
            self.handshakes.append(Handshake(time.monotonic(), number, headers, dict(request.query), refuse is None))
        if refuse:
            body = {"error": {"type": "invalid_request_error", "code": "scripted", "message": f"HTTP {refuse}"}}
            return web.json_response(body, status=refuse)
        ws = web.WebSocketResponse(max_msg_size=32 * 1024 * 1024)
        await ws.prepare(request)
        conn = _Connection(number, ws, request)
        self._connections[number] = conn
        limit_task = None
        try:
            if bad_key:
                await self._send(
                    conn, self._error("invalid_request_error", "invalid_api_key", "Incorrect API key provided.")
                )
                await ws.close(code=1008, message=b"invalid api key")
                return ws
            await asyncio.sleep(self.created_delay)
            conn.session = {
                "id": self._new_id("sess"),
                "object": "realtime.session",
                "model": request.query.get("model", ""),
            }
            await self._send(conn, {"type": "session.created", "session": conn.session})
            if self.session_limit_s is not None:
                limit_task = asyncio.create_task(
                    self._limit(conn, self.session_limit_s), name=f"fake-realtime-limit-{number}"
                )
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                await self._on_message(conn, message.data)
        finally:
            if conn.response is not None:
                conn.response.cancel()
            if limit_task is not None:
                limit_task.cancel()
            self._connections.pop(number, None)
            with self._lock:
                self.closes.append((time.monotonic(), number))
        return ws

    async def _limit(self, conn: _Connection, seconds: float) -> None:
        await asyncio.sleep(seconds)
        await self.expire(conn.number)

    async def _send(self, conn: _Connection, event: dict) -> None:
        event.setdefault("event_id", self._new_id("event"))
        if conn.ws.closed:
            return
        async with conn.lock:
            with contextlib.suppress(ConnectionError):  # the client went away mid-answer: nothing to tell it
                await conn.ws.send_str(json.dumps(event))

    @staticmethod
    def _error(kind: str, code: str, message: str, client_event_id: str | None = None) -> dict:
        return {
            "type": "error",
            "error": {"type": kind, "code": code, "message": message, "param": None, "event_id": client_event_id},
        }

    def _name(self, ga: str, beta: str) -> str:
        return ga if self.naming == "ga" else beta

    # ---------------------------------------------------------- client events

    async def _on_message(self, conn: _Connection, text: str) -> None:
        try:
            event = json.loads(text)
        except ValueError:
            await self._send(conn, self._error("invalid_request_error", "invalid_json", "The message is not JSON."))
            return
        if not isinstance(event, dict):
            await self._send(conn, self._error("invalid_request_error", "invalid_event", "An event must be an object."))
            return
        now = time.monotonic()
        record = Received(now, conn.number, event)
        with self._lock:
            self.received.append(record)
        kind, event_id = event.get("type"), event.get("event_id")
        handler = {
            "session.update": self._session_update,
            "input_audio_buffer.append": self._append,
            "input_audio_buffer.commit": self._commit,
            "input_audio_buffer.clear": self._clear,
            "conversation.item.create": self._item_create,
            "conversation.item.delete": self._item_delete,
            "conversation.item.truncate": self._truncate,
            "response.create": self._response_create,
            "response.cancel": self._response_cancel,
        }.get(kind)
        if handler is None:
            await self._send(
                conn, self._error("invalid_request_error", "invalid_value", f"Unknown event type {kind!r}.", event_id)
            )
            return
        await handler(conn, event, record)

    async def _session_update(self, conn: _Connection, event: dict, _record: Received) -> None:
        session = event.get("session")
        if not isinstance(session, dict):
            await self._send(
                conn,
                self._error(
                    "invalid_request_error", "missing_required_parameter", "session is required.", event.get("event_id")
                ),
            )
            return
        with self._lock:
            self.session_updates.append(session)
        conn.session.update(session)
        await asyncio.sleep(self.update_delay)
        await self._send(conn, {"type": "session.updated", "session": dict(conn.session)})

    async def _append(self, conn: _Connection, event: dict, _record: Received) -> None:
        try:
            audio = base64.b64decode(event.get("audio", ""), validate=True)
        except (binascii.Error, ValueError, TypeError):
            await self._send(
                conn,
                self._error("invalid_request_error", "invalid_value", "audio is not base64.", event.get("event_id")),
            )
            return
        model_vad = self._model_detects_turns(conn)
        if self.speech_events and not model_vad and not conn.speaking and audio:
            conn.speaking = True
            await self._speech_started(conn)
        conn.buffer.extend(audio)
        with self._lock:
            self.appended_bytes[conn.number] = self.appended_bytes.get(conn.number, 0) + len(audio)
        if model_vad and len(audio) >= 2:
            await self._detect_turn(conn, audio)

    async def _commit(self, conn: _Connection, event: dict, record: Received) -> None:
        with self._lock:
            self.commits.append(record)
        if not conn.buffer:
            await self._send(
                conn,
                self._error(
                    "invalid_request_error",
                    "input_audio_buffer_commit_empty",
                    "The buffer is empty.",
                    event.get("event_id"),
                ),
            )
            return
        await self._commit_buffer(conn)

    @staticmethod
    def _model_detects_turns(conn: _Connection) -> bool:
        """Whether the client handed turn detection to the model (GA or beta session shape)."""
        audio_in = conn.session.get("audio", {}).get("input", {}) if isinstance(conn.session.get("audio"), dict) else {}
        return bool(audio_in.get("turn_detection") or conn.session.get("turn_detection"))

    async def _detect_turn(self, conn: _Connection, audio: bytes) -> None:
        """The model's own turn detection: loud audio starts speech, `vad_silence_ms` of quiet ends the turn."""
        samples = np.frombuffer(audio[: len(audio) - len(audio) % 2], dtype="<i2").astype(np.float64)
        loud = float(np.sqrt(np.mean(samples**2))) >= self.vad_threshold
        if loud:
            conn.silence_ms = 0.0
            if not conn.speaking:
                conn.speaking = True
                if conn.response is not None and not conn.response.done():  # barge-in, as interrupt_response does
                    conn.cancel_reason = "turn_detected"
                    conn.response.cancel()
                await self._speech_started(conn)
            return
        if conn.speaking:
            conn.silence_ms += len(samples) / RATE * 1000
            if conn.silence_ms >= self.vad_silence_ms:
                await self._commit_buffer(conn)
                await self._response_create(conn, {}, None)

    async def _speech_started(self, conn: _Connection) -> None:
        start_ms = int(len(conn.buffer) / 2 / RATE * 1000)
        await self._send(conn, {"type": "input_audio_buffer.speech_started", "audio_start_ms": start_ms, "item_id": ""})

    async def _commit_buffer(self, conn: _Connection) -> str:
        """Turn the buffer into a user item: speech_stopped (if speaking), committed, then the scripted transcript."""
        item_id = self._new_id("item")
        if conn.speaking:
            end_ms = int(len(conn.buffer) / 2 / RATE * 1000)
            await self._send(
                conn, {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": end_ms, "item_id": item_id}
            )
        conn.speaking = False
        conn.silence_ms = 0.0
        conn.buffer.clear()
        await self._send(conn, {"type": "input_audio_buffer.committed", "item_id": item_id, "previous_item_id": None})
        with self._lock:
            heard = self.input_transcripts.popleft() if self.input_transcripts else None
        if heard is not None:
            half = len(heard) // 2
            for piece in (heard[:half], heard[half:]):
                await self._send(
                    conn,
                    {
                        "type": "conversation.item.input_audio_transcription.delta",
                        "item_id": item_id,
                        "content_index": 0,
                        "delta": piece,
                    },
                )
            await self._send(
                conn,
                {
                    "type": "conversation.item.input_audio_transcription.completed",
                    "item_id": item_id,
                    "content_index": 0,
                    "transcript": heard,
                },
            )
        return item_id

    async def _clear(self, conn: _Connection, _event: dict, _record: Received) -> None:
        conn.buffer.clear()
        conn.speaking = False
        await self._send(conn, {"type": "input_audio_buffer.cleared"})

    async def _item_create(self, conn: _Connection, event: dict, _record: Received) -> None:
        item = event.get("item")
        if not isinstance(item, dict):
            await self._send(
                conn,
                self._error(
                    "invalid_request_error", "missing_required_parameter", "item is required.", event.get("event_id")
                ),
            )
            return
        item = {**item, "id": item.get("id") or self._new_id("item")}
        with self._lock:
            self.items.append(item)
            if item.get("type") == "function_call_output":
                self.tool_results.append(item)
        await self._send(conn, {"type": "conversation.item.created", "item": item})

    async def _item_delete(self, conn: _Connection, event: dict, _record: Received) -> None:
        item_id = str(event.get("item_id", ""))
        with self._lock:
            self.deleted.append(item_id)
        await self._send(conn, {"type": "conversation.item.deleted", "item_id": item_id})

    async def _truncate(self, conn: _Connection, event: dict, record: Received) -> None:
        item_id, end_ms = str(event.get("item_id", "")), event.get("audio_end_ms")
        sent = conn.sent_audio_ms.get(item_id)
        if not isinstance(end_ms, int) or sent is None:
            await self._send(
                conn,
                self._error(
                    "invalid_request_error", "invalid_value", "Unknown item or bad audio_end_ms.", event.get("event_id")
                ),
            )
            return
        with self._lock:
            self.truncations.append(
                Truncation(record.at, conn.number, item_id, int(event.get("content_index", 0)), end_ms, sent)
            )
        if end_ms > sent:  # what OpenAI does too: the client cannot have heard more than was sent
            await self._send(
                conn,
                self._error(
                    "invalid_request_error",
                    "invalid_value",
                    "audio_end_ms is past the audio sent.",
                    event.get("event_id"),
                ),
            )
            return
        await self._send(
            conn,
            {
                "type": "conversation.item.truncated",
                "item_id": item_id,
                "content_index": event.get("content_index", 0),
                "audio_end_ms": end_ms,
            },
        )

    async def _response_create(self, conn: _Connection, event: dict, _record: Received | None) -> None:
        if conn.response is not None and not conn.response.done():
            await self._send(
                conn,
                self._error(
                    "invalid_request_error",
                    "conversation_already_has_active_response",
                    "A response is in progress.",
                    event.get("event_id"),
                ),
            )
            return
        with self._lock:
            script = self.responses.popleft() if self.responses else self.default_response
        conn.response = asyncio.create_task(self._respond(conn, script), name=f"fake-realtime-response-{conn.number}")

    async def _response_cancel(self, conn: _Connection, event: dict, record: Received) -> None:
        with self._lock:
            self.cancels.append(record)
        if conn.response is None or conn.response.done():
            await self._send(
                conn,
                self._error(
                    "invalid_request_error", "response_cancel_not_active", "No active response.", event.get("event_id")
                ),
            )
            return
        conn.response.cancel()

    # ---------------------------------------------------------- answers

    async def _respond(self, conn: _Connection, script: ScriptedResponse) -> None:
        response_id = self._new_id("resp")
        status, reason, output = "completed", None, []
        try:
            await self._send(
                conn,
                {"type": "response.created", "response": {"id": response_id, "status": "in_progress", "output": []}},
            )
            await asyncio.sleep(script.first_delay)
            if script.error is not None:
                kind, code, message = script.error
                await self._send(conn, self._error(kind, code, message))
                status = "silent"  # an error event stands instead of the response
                return
            if script.fail is not None:
                status = "failed"
                return
            if script.tool_call is not None:
                output.append(await self._call_tool(conn, response_id, script.tool_call))
                return
            status, reason = await self._speak(conn, response_id, script, output)
        except asyncio.CancelledError:
            status, reason = "cancelled", conn.cancel_reason
            conn.cancel_reason = "client_cancelled"
        finally:
            if not conn.ws.closed and status not in ("dropped", "silent"):
                done: dict[str, Any] = {
                    "id": response_id,
                    "status": status,
                    "output": output,
                    "usage": {
                        "total_tokens": 30,
                        "input_tokens": 10,
                        "output_tokens": 20,
                        "input_token_details": {"audio_tokens": 4},
                        "output_token_details": {"audio_tokens": 16},
                    },
                }
                if reason is not None:
                    done["status_details"] = {"type": status, "reason": reason}
                if script.fail is not None and status == "failed":
                    done["status_details"] = {
                        "type": "failed",
                        "error": {"type": "server_error", "code": script.fail[0], "message": script.fail[1]},
                    }
                await asyncio.shield(self._send(conn, {"type": "response.done", "response": done}))
                if script.rate_limits:
                    await asyncio.shield(
                        self._send(
                            conn,
                            {
                                "type": "rate_limits.updated",
                                "rate_limits": [
                                    {"name": "requests", "limit": 1000, "remaining": 999, "reset_seconds": 0.06},
                                    {"name": "tokens", "limit": 50000, "remaining": 49970, "reset_seconds": 0.04},
                                ],
                            },
                        )
                    )

    async def _speak(
        self, conn: _Connection, response_id: str, script: ScriptedResponse, output: list
    ) -> tuple[str, str | None]:
        item_id = self._new_id("item")
        item = {"id": item_id, "type": "message", "role": "assistant", "status": "in_progress", "content": []}
        output.append(item)
        await self._send(
            conn, {"type": "response.output_item.added", "response_id": response_id, "output_index": 0, "item": item}
        )
        pcm = script.pcm()
        step = max(2, int(RATE * script.chunk_ms / 1000) * 2)
        chunks = [pcm[i : i + step] for i in range(0, len(pcm), step)]
        words = script.transcript.split(" ")
        per_chunk = max(1, -(-len(words) // max(1, len(chunks))))
        conn.sent_audio_ms[item_id] = 0.0
        common = {"response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0}
        for n, chunk in enumerate(chunks):
            if script.disconnect_after_chunks is not None and n == script.disconnect_after_chunks:
                conn.request.transport.close()  # abrupt: no close frame, as when a provider drops
                return "dropped", None
            if script.refuse_after_chunks is not None and n == script.refuse_after_chunks:
                return "incomplete", "content_filter"
            if n and script.pace:
                await asyncio.sleep(script.pace * script.chunk_ms / 1000)
            if n == 0:
                with self._lock:
                    self.first_delta_at.append(time.monotonic())
            piece = " ".join(words[n * per_chunk : (n + 1) * per_chunk])
            if piece:
                text = piece if n * per_chunk + per_chunk >= len(words) else piece + " "
                await self._send(
                    conn,
                    {
                        "type": self._name("response.output_audio_transcript.delta", "response.audio_transcript.delta"),
                        **common,
                        "delta": text,
                    },
                )
            await self._send(
                conn,
                {
                    "type": self._name("response.output_audio.delta", "response.audio.delta"),
                    **common,
                    "delta": base64.b64encode(chunk).decode(),
                },
            )
            conn.sent_audio_ms[item_id] += len(chunk) / 2 / RATE * 1000
        await self._send(conn, {"type": self._name("response.output_audio.done", "response.audio.done"), **common})
        await self._send(
            conn,
            {
                "type": self._name("response.output_audio_transcript.done", "response.audio_transcript.done"),
                **common,
                "transcript": script.transcript,
            },
        )
        item["status"] = "completed"
        item["content"] = [
            {"type": "output_audio" if self.naming == "ga" else "audio", "transcript": script.transcript}
        ]
        await self._send(
            conn, {"type": "response.output_item.done", "response_id": response_id, "output_index": 0, "item": item}
        )
        return "completed", None

    async def _call_tool(self, conn: _Connection, response_id: str, call: ScriptedToolCall) -> dict:
        item_id, call_id = self._new_id("item"), self._new_id("call")
        item = {
            "id": item_id,
            "type": "function_call",
            "status": "in_progress",
            "call_id": call_id,
            "name": call.name,
            "arguments": "",
        }
        await self._send(
            conn, {"type": "response.output_item.added", "response_id": response_id, "output_index": 0, "item": item}
        )
        third = max(1, len(call.arguments) // 3)
        for i in range(0, len(call.arguments), third):
            await self._send(
                conn,
                {
                    "type": "response.function_call_arguments.delta",
                    "response_id": response_id,
                    "item_id": item_id,
                    "output_index": 0,
                    "call_id": call_id,
                    "delta": call.arguments[i : i + third],
                },
            )
        done = {
            "type": "response.function_call_arguments.done",
            "response_id": response_id,
            "item_id": item_id,
            "output_index": 0,
            "call_id": call_id,
            "arguments": call.arguments,
        }
        if self.naming == "ga":  # beta servers name the function only in the output item
            done["name"] = call.name
        await self._send(conn, done)
        item = {**item, "status": "completed", "arguments": call.arguments}
        await self._send(
            conn, {"type": "response.output_item.done", "response_id": response_id, "output_index": 0, "item": item}
        )
        return item
