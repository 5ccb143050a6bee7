"""An asyncio client for one OpenAI-Realtime-protocol session, and a pool that keeps the next one warm.

Uses aiohttp's WebSocket client, which AstrBot already ships, so the plugin
needs no new dependency. One `RealtimeSession` owns one socket and one reader
task; `aclose()` ends both within `close_timeout`. Every wait is bounded by
a setting. Events arrive typed (see events.py) through `session.events()`.

`RealtimePool` hides the handshake from the turn: it keeps one connected,
configured session ready; `take()` hands it over and starts warming the next.
A spare is replaced when it dies or when its age nears the provider's limit.

Example:
    >>> pool = RealtimePool(RealtimeSettings(url="wss://api.openai.com/v1/realtime", api_key=key,
    ...                                      model="gpt-realtime"), SessionConfig(instructions=persona))
    >>> pool.start()
    >>> session = await pool.take()
    >>> await session.append_audio(mic_pcm_16k, rate=16000); await session.commit(); await session.create_response()
    >>> async for event in session.events(): ...
    >>> await session.aclose(); await pool.aclose()
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp

from ..audio.resample import StreamResampler
from ..log import logger
from .events import (
    MODEL_RATE,
    Api,
    RealtimeError,
    RealtimeErrorCode,
    ServerEvent,
    SessionConfig,
    SessionReady,
    ToolCallRequested,
    decode,
    encode_append_audio,
    encode_clear,
    encode_commit,
    encode_history_item,
    encode_item_delete,
    encode_response_cancel,
    encode_response_create,
    encode_session_update,
    encode_tool_result,
    encode_truncate,
    encode_user_text,
    error_code_for,
    function_call_item,
    realtime_error,
)

MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # an audio delta is small, but session.updated echoes every tool schema


@dataclass(frozen=True)
class RealtimeSettings:
    """Where the provider is and how long anything may take (seconds)."""

    url: str  # ws:// or wss://, e.g. wss://api.openai.com/v1/realtime
    api_key: str = field(default="", repr=False)
    model: str = ""  # sent as ?model= unless the URL already has one
    api: Api = "ga"  # event shapes: "ga" (OpenAI today) or "beta" (Qwen-Omni, GLM, older servers)
    beta_header: bool | None = None  # send `OpenAI-Beta: realtime=v1`; None = when api == "beta"
    input_rate: int = MODEL_RATE  # the mic PCM16 rate the provider takes (OpenAI 24000; Qwen-Omni 16000)
    connect_timeout: float = 10.0  # socket handshake plus the provider's `session.created`
    configure_timeout: float = 10.0  # `session.update` until `session.updated`
    send_timeout: float = 5.0
    close_timeout: float = 2.0
    max_session_age: float = 55 * 60.0  # OpenAI ends sessions at 60 minutes
    rewarm_margin: float = 120.0  # replace a spare this long before it would reach max_session_age
    event_queue_size: int = 2048  # undelivered events per session; a full queue pauses reading (backpressure)

    def __post_init__(self) -> None:
        if urlsplit(self.url).scheme not in ("ws", "wss"):
            raise ValueError(f"realtime_url must start with ws:// or wss://, got {self.url!r}")
        if self.api not in ("ga", "beta"):
            raise ValueError(f"api must be 'ga' or 'beta', got {self.api!r}")
        if self.input_rate <= 0:
            raise ValueError("input_rate must be positive")
        for name in ("connect_timeout", "configure_timeout", "send_timeout", "close_timeout", "max_session_age"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if not 0 <= self.rewarm_margin < self.max_session_age:  # else every spare would be replaced at once, forever
            raise ValueError("rewarm_margin must be at least 0 and less than max_session_age")

    def connect_url(self) -> str:
        parts = urlsplit(self.url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        if self.model and not any(key == "model" for key, _ in query):
            query.append(("model", self.model))
        return urlunsplit(parts._replace(query=urlencode(query)))

    def headers(self) -> dict[str, str]:
        headers = {}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        if self.beta_header if self.beta_header is not None else self.api == "beta":
            headers["OpenAI-Beta"] = "realtime=v1"
        return headers


class RealtimeFailure(Exception):
    """A realtime operation failed; `error` carries the mapped code and a clear message."""

    def __init__(self, error: RealtimeError) -> None:
        super().__init__(
            f"{error.code.value}: {error.message}" + (f" ({error.provider_message})" if error.provider_message else "")
        )
        self.error = error


_session_numbers = itertools.count(1)


class RealtimeSession:
    """One connected session. Open with `await RealtimeSession.open(settings)`; end with `aclose()`."""

    def __init__(
        self,
        settings: RealtimeSettings,
        ws: aiohttp.ClientWebSocketResponse,
        http: aiohttp.ClientSession,
        owns_http: bool,
    ) -> None:
        self.settings = settings
        self.number = next(_session_numbers)
        self.opened_at = time.monotonic()
        self.session_id = ""
        self.config: SessionConfig | None = None  # as last sent
        self.ended: RealtimeError | None = None  # why this session can no longer be used
        self._ws = ws
        self._http = http
        self._owns_http = owns_http
        self._events: asyncio.Queue[ServerEvent | None] = asyncio.Queue(settings.event_queue_size)
        self._send_lock = asyncio.Lock()
        self._event_ids = itertools.count(1)
        self._created: asyncio.Future[SessionReady] = asyncio.get_running_loop().create_future()
        self._config_acks: deque[tuple[str, asyncio.Future[None]]] = (
            deque()
        )  # session.update ids awaiting session.updated
        self._seeded_ids: list[str] = []  # history items this client created
        self._function_names: dict[str, str] = {}  # item_id or call_id -> function name (beta omits it in .done)
        self._resamplers: dict[int, StreamResampler] = {}
        self._reading = False
        self._closing = False
        self._end_callbacks: list[Callable[[RealtimeSession], None]] = []
        self.closed = asyncio.Event()  # set when the reader has stopped, whatever the cause
        self._reader = asyncio.create_task(self._read(), name=f"realtime-session-{self.number}-reader")

    def __repr__(self) -> str:
        state = "closed" if self.closed.is_set() else "open"
        return f"<RealtimeSession #{self.number} {self.session_id or '?'} {state} age={self.age:.1f}s>"

    # ------------------------------------------------------------ lifecycle

    @classmethod
    async def open(cls, settings: RealtimeSettings, *, http: aiohttp.ClientSession | None = None) -> RealtimeSession:
        """Connect and wait for the provider's `session.created`; RealtimeFailure on any error (bounded)."""
        owns_http = http is None
        client = http or aiohttp.ClientSession()
        try:
            async with asyncio.timeout(settings.connect_timeout):
                ws = await client.ws_connect(
                    settings.connect_url(), headers=settings.headers(), heartbeat=20.0, max_msg_size=MAX_MESSAGE_BYTES
                )
        except BaseException as exc:
            if owns_http:
                await client.close()
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise _connect_failure(exc) from exc
        session = cls(settings, ws, client, owns_http)
        try:
            async with asyncio.timeout(settings.connect_timeout):
                ready = await session._created
            session.session_id = ready.session_id
        except BaseException as exc:
            await session.aclose()
            if isinstance(exc, RealtimeFailure):
                raise
            if isinstance(exc, TimeoutError):
                raise RealtimeFailure(
                    realtime_error(RealtimeErrorCode.TIMEOUT, "no session.created after connecting")
                ) from exc
            raise
        return session

    async def aclose(self) -> None:
        """Close the socket and stop the reader, within `close_timeout`; safe to call twice."""
        if self._closing:
            await self._wait_reader()
            return
        self._closing = True
        if self.ended is None:
            self.ended = realtime_error(RealtimeErrorCode.DISCONNECTED, "closed by Live Mode")
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.settings.close_timeout):
                await self._ws.close()
        self._reader.cancel()
        await self._wait_reader()
        if self._owns_http:
            with contextlib.suppress(Exception):
                await self._http.close()

    async def _wait_reader(self) -> None:
        with contextlib.suppress(asyncio.CancelledError, TimeoutError, Exception):
            async with asyncio.timeout(self.settings.close_timeout):
                await asyncio.shield(self._reader)

    def on_end(self, callback: Callable[[RealtimeSession], None]) -> None:
        """Call `callback(session)` once the session has ended (at once if it already has)."""
        if self.closed.is_set():
            callback(self)
        else:
            self._end_callbacks.append(callback)

    @property
    def age(self) -> float:
        return time.monotonic() - self.opened_at

    @property
    def usable(self) -> bool:
        return self.ended is None and not self.closed.is_set()

    def expiring(self, within: float | None = None) -> bool:
        """True once the session is within `within` seconds (default rewarm_margin) of max_session_age."""
        margin = self.settings.rewarm_margin if within is None else within
        return self.age >= self.settings.max_session_age - margin

    # ------------------------------------------------------------ reading

    async def _read(self) -> None:
        error: RealtimeError | None = None
        try:
            while True:
                message = await self._ws.receive()
                if message.type == aiohttp.WSMsgType.TEXT:
                    await self._dispatch(message.data)
                elif message.type == aiohttp.WSMsgType.BINARY:
                    continue  # the protocol is JSON text only
                else:  # CLOSE, CLOSING, CLOSED, ERROR
                    if not self._closing:
                        reason = f"closed with {self._ws.close_code}" if self._ws.close_code else "connection lost"
                        if message.extra:
                            reason += f": {message.extra}"
                        error = realtime_error(RealtimeErrorCode.DISCONNECTED, reason)
                    break
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # noqa: BLE001 - any socket failure is a disconnect, reported as such
            if not self._closing:
                error = realtime_error(RealtimeErrorCode.DISCONNECTED, f"{type(exc).__name__}: {exc}")
        finally:
            self._finish(error)

    def _finish(self, error: RealtimeError | None) -> None:
        """The one teardown point of the reader: record why, fail waiters, end the event stream."""
        if error is not None and self.ended is None:
            self.ended = error
        failure = RealtimeFailure(self.ended or realtime_error(RealtimeErrorCode.DISCONNECTED, "session closed"))
        if not self._created.done():
            self._created.set_exception(failure)
            self._created.exception()  # retrieved here so an unawaited future never warns
        while self._config_acks:
            _, ack = self._config_acks.popleft()
            if not ack.done():
                ack.set_exception(failure)
                ack.exception()
        if error is not None and self.ended is error:  # a provider error already reported the cause
            self._offer(error)
        self._offer(None)
        self.closed.set()
        callbacks, self._end_callbacks = self._end_callbacks, []
        for callback in callbacks:
            try:
                callback(self)
            except Exception:  # noqa: BLE001 - one bad listener must not stop the others
                logger.exception("realtime session end callback failed")

    def _offer(self, item: ServerEvent | None) -> None:
        """Queue without waiting (teardown only): drop the oldest event if the consumer is gone."""
        if self._events.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self._events.get_nowait()
        self._events.put_nowait(item)

    async def _dispatch(self, text: str) -> None:
        try:
            raw = json.loads(text)
        except ValueError:
            await self._events.put(realtime_error(RealtimeErrorCode.PROTOCOL, "a message that is not JSON"))
            return
        named = function_call_item(raw)
        if named is not None:
            item_id, call_id, name = named
            self._function_names[item_id] = self._function_names[call_id] = name
        event = decode(raw)
        if event is None:
            return
        if isinstance(event, ToolCallRequested):
            named_as = self._function_names.pop(event.item_id, "") or self._function_names.get(event.call_id, "")
            self._function_names.pop(event.call_id, None)
            if not event.name:
                event = replace(event, name=named_as)
        if isinstance(event, SessionReady):
            if event.created and not self._created.done():
                self._created.set_result(event)
            elif not event.created:
                self._ack_config(None)
        elif isinstance(event, RealtimeError):
            self._on_error(event)
        await self._events.put(event)

    def _ack_config(self, failure: RealtimeFailure | None, event_id: str = "") -> None:
        """Resolve the oldest pending `session.update` (or the one `event_id` names)."""
        for index, (pending_id, ack) in enumerate(self._config_acks):
            if not event_id or pending_id == event_id:
                del self._config_acks[index]
                if not ack.done():
                    if failure is None:
                        ack.set_result(None)
                    else:
                        ack.set_exception(failure)
                        ack.exception()
                return

    def _on_error(self, error: RealtimeError) -> None:
        if error.ends_session and self.ended is None:
            self.ended = error
        if not self._created.done():  # an error before session.created (e.g. a bad key) fails the connect
            self._created.set_exception(RealtimeFailure(error))
            self._created.exception()
        if error.client_event_id:
            self._ack_config(RealtimeFailure(error), error.client_event_id)
        elif error.ends_session:
            while self._config_acks:
                self._ack_config(RealtimeFailure(error))

    def events(self) -> AsyncIterator[ServerEvent]:
        """Every decoded server event in order; a disconnect arrives as a RealtimeError, then iteration ends.

        Breaking out of the loop and iterating again later loses nothing.
        """
        return _EventStream(self)

    async def next_event(self) -> ServerEvent | None:
        """The next event, or None once the session has ended. One reader at a time: a concurrent call raises.

        Cancelling the wait is safe: no event is lost.
        """
        if self._reading:
            raise RuntimeError("another task is already reading this realtime session's events")
        self._reading = True
        try:
            event = await self._events.get()
        finally:
            self._reading = False
        if event is None:
            self._events.put_nowait(None)  # every later read ends too
        return event

    def pending_events(self) -> list[ServerEvent]:
        """Take every event already queued, without waiting (what arrived between two turns)."""
        events: list[ServerEvent] = []
        while not self._events.empty():
            event = self._events.get_nowait()
            if event is None:
                self._events.put_nowait(None)  # the end stays for every later read
                break
            events.append(event)
        return events

    # ------------------------------------------------------------ sending

    def _next_id(self, prefix: str) -> str:
        return f"lm_{prefix}_{self.number}_{next(self._event_ids)}"

    async def send(self, event: dict) -> None:
        """Send one client event; RealtimeFailure if the session has ended or the send takes too long."""
        if self.ended is not None or self.closed.is_set():
            raise RealtimeFailure(self.ended or realtime_error(RealtimeErrorCode.DISCONNECTED, "session closed"))
        try:
            async with self._send_lock, asyncio.timeout(self.settings.send_timeout):
                await self._ws.send_str(json.dumps(event, ensure_ascii=False))
        except TimeoutError as exc:  # a frame may be half written: the socket cannot be trusted any more
            self.ended = self.ended or realtime_error(RealtimeErrorCode.TIMEOUT, f"sending {event.get('type')}")
            raise RealtimeFailure(self.ended) from exc
        except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
            self.ended = self.ended or realtime_error(RealtimeErrorCode.DISCONNECTED, f"{type(exc).__name__}: {exc}")
            raise RealtimeFailure(self.ended) from exc

    async def configure(self, config: SessionConfig, *, wait: bool = True) -> None:
        """Send instructions, voice, tools and turn detection, then seed `config.history`.

        With `wait`, returns once the provider confirms (`session.updated`), within configure_timeout.
        """
        event_id, ack = await self._send_session_update(config)
        try:
            await self._replace_history(config)
            self.config = config
            if wait:
                async with asyncio.timeout(self.settings.configure_timeout):
                    await ack
        except TimeoutError as exc:
            raise RealtimeFailure(
                realtime_error(RealtimeErrorCode.TIMEOUT, "no session.updated after session.update")
            ) from exc
        finally:
            if wait and not ack.done():
                self._discard_ack(event_id)

    async def _send_session_update(self, config: SessionConfig) -> tuple[str, asyncio.Future[None]]:
        """Send `session.update` and register for its `session.updated` (matched in order, or by error id)."""
        event_id = self._next_id("cfg")
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._config_acks.append((event_id, ack))
        try:
            await self.send(encode_session_update(config, api=self.settings.api, event_id=event_id))
        except BaseException:
            self._discard_ack(event_id)
            raise
        return event_id, ack

    def _discard_ack(self, event_id: str) -> None:
        for index, (pending_id, ack) in enumerate(self._config_acks):
            if pending_id == event_id:
                del self._config_acks[index]
                ack.cancel()
                return

    async def _replace_history(self, config: SessionConfig) -> None:
        for item_id in self._seeded_ids:
            await self.send(encode_item_delete(item_id))
        self._seeded_ids = []
        await self._seed(config.history)

    async def _seed(self, items) -> None:
        for item in items:
            item_id = self._next_id("h")
            await self.send(encode_history_item(item, item_id=item_id, api=self.settings.api))
            self._seeded_ids.append(item_id)

    async def sync_config(self, config: SessionConfig) -> int:
        """Bring a session configured earlier up to `config` without waiting for replies; returns events sent.

        History that only grew gets its new turns appended; otherwise the seeded turns are replaced.
        For a spare taken from the pool: nothing here waits on the provider.
        """
        before = self.config
        if before == config:
            return 0
        sent = 0
        settings_changed = before is None or replace(before, history=()) != replace(config, history=())
        if settings_changed:
            await self._send_session_update(config)  # confirmed later, in order; nothing waits for it here
            sent += 1
        old = before.history if before is not None else ()
        if config.history[: len(old)] == old:
            await self._seed(config.history[len(old) :])
            sent += len(config.history) - len(old)
        else:
            sent += len(self._seeded_ids) + len(config.history)
            await self._replace_history(config)
        self.config = config
        return sent

    async def append_audio(self, pcm16: bytes, *, rate: int = MODEL_RATE) -> None:
        """Stream microphone PCM16 mono at `rate`, resampled to `settings.input_rate` (one filter state per rate)."""
        if rate != self.settings.input_rate:
            resampler = self._resamplers.get(rate)
            if resampler is None:
                resampler = self._resamplers[rate] = StreamResampler(rate, self.settings.input_rate)
            pcm16 = resampler.process(pcm16)
        if pcm16:
            await self.send(encode_append_audio(pcm16))

    async def commit(self) -> None:
        """End the user's audio turn (our own turn detection): flush the resampler tail, then commit."""
        for resampler in self._resamplers.values():
            tail = resampler.flush()
            if tail:
                await self.send(encode_append_audio(tail))
        await self.send(encode_commit())

    async def clear(self) -> None:
        """Drop uncommitted audio (a false start)."""
        for resampler in self._resamplers.values():
            resampler.flush()
        await self.send(encode_clear())

    async def send_text(self, text: str) -> None:
        """A typed user turn; call `create_response()` to have it answered."""
        await self.send(encode_user_text(text))

    async def create_response(self, *, instructions: str = "") -> None:
        await self.send(encode_response_create(instructions=instructions))

    async def cancel_response(self, *, response_id: str = "") -> None:
        await self.send(encode_response_cancel(response_id=response_id))

    async def truncate(self, item_id: str, content_index: int, audio_end_ms: int) -> None:
        """Tell the model the user heard the answer `item_id` only up to `audio_end_ms` (barge-in)."""
        await self.send(encode_truncate(item_id, content_index, audio_end_ms))

    async def delete_item(self, item_id: str) -> None:
        await self.send(encode_item_delete(item_id))

    async def send_tool_result(self, call_id: str, output: str, *, respond: bool = True) -> None:
        """Return a function's output to the model; with `respond`, ask it to continue the answer."""
        await self.send(encode_tool_result(call_id, output))
        if respond:
            await self.create_response()


class _EventStream:
    """`async for` over a session's events without an async generator (nothing to finalise on break)."""

    __slots__ = ("_session",)

    def __init__(self, session: RealtimeSession) -> None:
        self._session = session

    def __aiter__(self) -> _EventStream:
        return self

    async def __anext__(self) -> ServerEvent:
        event = await self._session.next_event()
        if event is None:
            raise StopAsyncIteration
        return event


def _connect_failure(exc: BaseException) -> BaseException:
    """A connect-time exception as a RealtimeFailure with a mapped code (anything unexpected passes through)."""
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        code = error_code_for(http_status=exc.status)
        return RealtimeFailure(
            realtime_error(code, f"handshake refused with HTTP {exc.status}", http_status=exc.status)
        )
    if isinstance(exc, TimeoutError):
        return RealtimeFailure(realtime_error(RealtimeErrorCode.TIMEOUT, "the WebSocket handshake did not finish"))
    if isinstance(exc, aiohttp.ClientError | OSError):
        return RealtimeFailure(realtime_error(RealtimeErrorCode.CONNECT_FAILED, f"{type(exc).__name__}: {exc}"))
    return exc


Opener = Callable[[RealtimeSettings], Awaitable[RealtimeSession]]


@dataclass
class PoolStats:
    handshakes: list[float] = field(default_factory=list)  # monotonic start of every connect attempt
    failures: list[RealtimeError] = field(default_factory=list)
    takes: list[tuple[float, float, bool]] = field(default_factory=list)  # (start, end, was a spare ready)
    replaced: list[str] = field(default_factory=list)  # why spares were thrown away: "ended", "aged"


class RealtimePool:
    """Keeps one connected, configured session ready so that no turn waits for a handshake.

    `start()` begins warming; `take()` returns the ready spare at once (warming the next) or,
    on a cold start, waits for one within `timeout`. A spare that dies or nears
    `max_session_age` is replaced. `set_config()` changes what new spares are told; a spare
    configured earlier is brought up to date on `take()` without a round trip.
    """

    def __init__(
        self,
        settings: RealtimeSettings,
        config: SessionConfig | None = None,
        *,
        opener: Opener | None = None,
        retry_delays: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0),
    ) -> None:
        self.settings = settings
        self.config = config or SessionConfig()
        self.stats = PoolStats()
        self.last_error: RealtimeError | None = None
        self._opener = opener or RealtimeSession.open
        self._retry_delays = retry_delays
        self._spare: RealtimeSession | None = None
        self._warmer: asyncio.Task | None = None
        self._wake = asyncio.Event()  # the warmer re-checks the spare
        self._changed = asyncio.Condition()  # take() waiters re-check
        self._closed = False

    def __repr__(self) -> str:
        return f"<RealtimePool ready={self.ready} handshakes={len(self.stats.handshakes)}>"

    @property
    def ready(self) -> bool:
        return self._spare is not None and self._spare.usable

    def start(self) -> None:
        """Begin (or resume, after a permanent failure) warming a spare."""
        if self._closed:
            raise RuntimeError("the realtime pool is closed")
        if self._warmer is None or self._warmer.done():
            self._warmer = asyncio.create_task(self._keep_warm(), name="realtime-pool-warmer")

    def set_config(self, config: SessionConfig) -> None:
        """What the next taken session should know (new persona, newer history)."""
        self.config = config

    async def take(self, timeout: float | None = None, *, fail_fast: bool = False) -> RealtimeSession:
        """A ready session, now if a spare is warm; else within `timeout` (default connect+configure).

        A permanent failure (a bad key) while waiting raises at once; with `fail_fast`, any failure does
        (the caller has something better to do than wait out the retries).
        """
        started = time.monotonic()
        was_ready = self.ready
        limit = timeout if timeout is not None else self.settings.connect_timeout + self.settings.configure_timeout
        failures_before = len(self.stats.failures)
        self.start()
        try:
            async with asyncio.timeout(limit), self._changed:
                while True:
                    session = self._spare
                    if session is not None and session.usable:
                        self._spare = None
                        break
                    failed = len(self.stats.failures) > failures_before and self.last_error is not None
                    if failed and (fail_fast or not self.last_error.retryable):  # type: ignore[union-attr]
                        raise RealtimeFailure(self.last_error)
                    if self._warmer is not None and self._warmer.done() and not self._closed:
                        self.start()
                    await self._changed.wait()
        except TimeoutError as exc:
            raise RealtimeFailure(
                self.last_error or realtime_error(RealtimeErrorCode.TIMEOUT, "no realtime session became ready")
            ) from exc
        try:
            await session.sync_config(self.config)
        except RealtimeFailure:
            await session.aclose()
            raise
        finally:
            self._wake.set()  # warm the next one; it starts once this take is over, never inside it
        self.stats.takes.append((started, time.monotonic(), was_ready))
        return session

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _keep_warm(self) -> None:
        attempt = 0
        while not self._closed:
            if self._spare is None:
                self.stats.handshakes.append(time.monotonic())
                try:
                    session = await self._open_configured()
                except Exception as exc:
                    failure = exc if isinstance(exc, RealtimeFailure) else None
                    if failure is None:  # a bug, not the provider: keep it visible, keep the warmer alive
                        logger.exception("realtime: unexpected error while warming a session")
                        failure = RealtimeFailure(
                            realtime_error(RealtimeErrorCode.CONNECT_FAILED, f"{type(exc).__name__}: {exc}")
                        )
                    self.last_error = failure.error
                    self.stats.failures.append(failure.error)
                    await self._notify()
                    if not failure.error.retryable:
                        logger.warning(f"realtime: giving up warming a session: {failure}")
                        return  # a bad key will not get better by itself; take() restarts warming
                    await asyncio.sleep(self._retry_delay(attempt))
                    attempt += 1
                    continue
                self.last_error = None
                self._spare = session
                session.on_end(lambda _s: self._wake.set())
                await self._notify()
            spare = self._spare
            if spare is None:  # taken while we announced it
                continue
            self._wake.clear()
            left = self.settings.max_session_age - self.settings.rewarm_margin - spare.age
            if left > 0 and spare.usable:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(left):
                        await self._wake.wait()
            if self._spare is not spare:  # taken
                attempt = 0
            elif not spare.usable or spare.expiring():
                self._spare = None
                died = not spare.usable
                self.stats.replaced.append("ended" if died else "aged")
                if spare.ended is not None and spare.ended.code is not RealtimeErrorCode.DISCONNECTED:
                    self.last_error = spare.ended
                await spare.aclose()
                if died:  # a provider that drops idle sessions is backed off from like a failed connect
                    await asyncio.sleep(self._retry_delay(attempt))
                    attempt += 1
                else:
                    attempt = 0

    def _retry_delay(self, attempt: int) -> float:
        return self._retry_delays[min(attempt, len(self._retry_delays) - 1)]

    async def _open_configured(self) -> RealtimeSession:
        session = await self._opener(self.settings)
        try:
            await session.configure(self.config)
        except BaseException:
            await session.aclose()
            raise
        return session

    async def aclose(self) -> None:
        """Stop warming and close the spare (bounded); sessions already taken belong to their takers."""
        self._closed = True
        if self._warmer is not None:
            self._warmer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                async with asyncio.timeout(self.settings.close_timeout + self.settings.connect_timeout):
                    await self._warmer
        spare, self._spare = self._spare, None
        if spare is not None:
            await spare.aclose()
        await self._notify()
