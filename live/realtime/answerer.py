"""The realtime backend: a live session's turns answered by one speech-to-speech model session.

`RealtimeAnswerer` is the engine's `Answerer` for one live session. It keeps a
`RealtimePool` (a configured provider session warm from connect on, replaced
before the provider's age limit and after an error; the host's persona,
history and tools carried over with `set_config`) and answers each turn on the
session it took: the utterance (16 kHz, cut by our VAD) is appended and
committed, or the typed text sent as an item, then `response.create`. The
answer streams out as it arrives: audio deltas resampled to the client's
format, transcript deltas as `bot_delta_chunk`, the model's transcription of
the user as `user_msg`, with the same turn ids, states and metrics marks as
the cascade.

Barge-in: `Turn.interrupt()` stops the playback and the `RealtimeRun`
(`response.cancel`); `finalize()` then truncates the model's item at the heard
ms and writes the heard part to the host conversation. A completed answer is
written in full once it has played (or when the next turn starts, or the
session closes), so a cut while it still plays keeps only what was heard.

A provider failure is a coded error; with `fallback`, a turn that produced no
audio yet is answered by the cascade instead (metrics `backend: "cascade"`).

With the model's own turn detection (`turn_detection` "server_vad" or
"semantic_vad"), the session hands the microphone to `hear()` and the answerer
streams it to the session in use (one sender task, a bounded backlog). One
listener task then owns the provider session's events: the model's
`speech_started` is the session's barge-in, its commit starts a turn
(`LiveSession.begin_backend_turn`) whose answer the model already creates, and
every other event is copied to the inbox of each exchange still reading
(`RealtimeRun.inbox`). The listener also swaps to the warm spare when the
session ends or, while nobody speaks, nears its age limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..config import RealtimeBackendSettings
from ..engine.events import AgentTextDelta, BotReplied, ErrorRaised, TurnEnded, UserTranscribed
from ..engine.ports import Conversation
from ..engine.tasks import cancel_and_wait
from ..engine.turn import INPUT_SAMPLE_RATE, Turn
from ..errors import ErrorCode
from ..log import logger
from .client import RealtimeFailure, RealtimePool, RealtimeSession, RealtimeSettings
from .events import (
    AudioDelta,
    InputCommitted,
    InputTranscript,
    InputTranscriptFailed,
    RealtimeError,
    RealtimeErrorCode,
    ResponseDone,
    ResponseStarted,
    SessionConfig,
    SpeechStarted,
    SpeechStopped,
    ToolCallRequested,
    TranscriptDelta,
    TurnDetection,
    encode_response_cancel,
    encode_truncate,
    realtime_error,
)
from .playback import RealtimePlayback
from .ports import RealtimeContext, RealtimeHost

if TYPE_CHECKING:
    from ..engine.cascade import CascadeAnswerer

CONTEXT_TIMEOUT_S = 10.0  # reading the persona, history and tools from the host
FAIL_FAST_TAKE_S = 1.0  # after a failed connect, a turn waits this long for a session before it falls back
TRANSCRIPT_WAIT_S = 2.0  # after the answer: how long the model's transcription of the user may still take
REMEMBER_MARGIN_S = 1.0  # a completed answer is written this long after it should have finished playing
UNTRANSCRIBED = "(spoken; the realtime model gave no transcript)"
MIC_BACKLOG_MS = 5000  # the model's turn detection: microphone audio held while no session can take it
QUIET_EVENT = "lm_quiet_"  # the event id prefix of our events whose errors mean nothing
LISTEN_TICK_S = 5.0  # how often an idle listener checks whether its session nears the age limit


def realtime_settings(backend: RealtimeBackendSettings) -> RealtimeSettings:
    """The client settings for the plugin's realtime provider (ValueError on a bad URL or rate)."""
    age = backend.max_session_minutes * 60
    return RealtimeSettings(
        url=backend.url,
        api_key=backend.api_key,
        model=backend.model,
        api=backend.api,
        input_rate=backend.input_rate,
        max_session_age=age,
        rewarm_margin=min(120.0, age / 10),
    )


def error_code(error: RealtimeError) -> ErrorCode:
    """The client-facing code of a provider failure (the realtime codes share their names; an unreadable
    event is the provider's fault, as far as a client can act on it)."""
    if error.code is RealtimeErrorCode.PROTOCOL:
        return ErrorCode.REALTIME_SERVER_ERROR
    return ErrorCode(error.code.value)


# ---------------------------------------------------------------- one turn's exchange


class RealtimeRun:
    """One turn on the model: the request, what came back, and what history keeps (the engine's `AgentRun`)."""

    def __init__(self, answerer: RealtimeAnswerer, session: RealtimeSession, turn: Turn, playback: RealtimePlayback):
        self._answerer = answerer
        self.session = session
        self.turn = turn
        self.playback = playback
        self.voice = turn.pcm is not None
        self.user_text: str | None = turn.text  # typed, or an utterance already transcribed (judged over a pause)
        self.user_told = turn.text is not None
        self.response_active = False  # response.create sent, its response.done not read yet
        self.response_id = ""
        self.calls: list[ToolCallRequested] = []  # requested by the current response
        self.open_calls: list[str] = []  # call ids without an output yet
        self.remembered = False
        # the model's turn detection: this exchange's copy of the session's events, and the user item it answers
        self.inbox: asyncio.Queue | None = None
        self.input_item = ""
        self.awaiting_response = False  # asked for a response whose response.created has not come yet
        self._quiet = 0  # our events whose errors mean nothing (a late cancel, a truncate), sent so far
        self._cancel: asyncio.Task | None = None
        self._stopped = False

    # -------- events (the answer loop and closed() both read through here)

    def expect_response(self) -> None:
        """A response to this exchange was asked for (by us, or by the model's turn detection)."""
        self.response_active = True
        self.awaiting_response = True

    def owns_input(self, item_id: str) -> bool:
        """Whether a transcription is of this exchange's user audio (any, when the item is not known)."""
        return not self.input_item or not item_id or item_id == self.input_item

    async def next_event(self) -> object:
        """The next event of the session: read directly, or copied here by the model-detection listener."""
        if self.inbox is not None:
            return await self.inbox.get()
        return await self.session.next_event()

    def take(self, event: object) -> None:
        """Note what an event says about this exchange."""
        match event:
            case ResponseStarted(response_id=response_id) if self.awaiting_response:
                self.response_id = response_id
                self.awaiting_response = False
            case ResponseDone(response_id=response_id) if not _of_other_response(self, response_id):
                self.response_active = False
            case InputTranscript(text=text, final=True, item_id=item_id) if (
                self.voice and self.user_text is None and self.owns_input(item_id)
            ):
                self.user_text = text.strip()
                self.turn.mark("stt_done")
            case ToolCallRequested():
                self.calls.append(event)
                self.open_calls.append(event.call_id)

    @staticmethod
    def ignorable(error: RealtimeError) -> bool:
        """An error about an event of ours that may fail harmlessly (any exchange's: with the model's turn
        detection, every exchange reading sees it)."""
        return error.client_event_id.startswith(QUIET_EVENT)

    async def send_ignoring_errors(self, event: dict) -> None:
        self._quiet += 1
        event.setdefault("event_id", f"{QUIET_EVENT}{self.turn.id}_{self._quiet}")
        await self.session.send(event)

    # -------- AgentRun

    def stop(self) -> None:
        """Barge-in: ask the model to stop answering (the playback is already silent)."""
        if self._stopped:
            return
        self._stopped = True
        if self.response_active and self.session.usable:
            self._cancel = asyncio.create_task(self._send_cancel(), name=f"live-realtime-cancel-{self.turn.id}")

    async def _send_cancel(self) -> None:
        with contextlib.suppress(RealtimeFailure):
            await self.send_ignoring_errors(encode_response_cancel())

    async def closed(self) -> None:
        """The cancelled response is over (so the next can start), and the user's words are known."""
        if self._cancel is not None:
            await self._cancel
        transcript_by: float | None = None  # once the response is over: how long the transcript may take
        while self.session.usable:
            if not self.response_active:
                if self.user_text is not None or not self._answerer.transcribes:
                    return
                transcript_by = transcript_by or time.monotonic() + TRANSCRIPT_WAIT_S
            left = None if transcript_by is None else max(0.0, transcript_by - time.monotonic())
            try:  # the caller bounds the wait for the response's end
                event = await asyncio.wait_for(self.next_event(), left)
            except TimeoutError:
                return
            if event is None:
                return
            self.take(event)

    async def keep_heard(self, heard: str) -> None:
        """After a cut: the model forgets what was not heard, and history keeps the heard part."""
        turn = self.turn
        played = turn.played_ms if turn.played_ms is not None else turn.estimated_played_ms(turn.cut_at)
        with contextlib.suppress(RealtimeFailure):
            for item_id, end_ms in self.playback.truncations(played):
                await self.send_ignoring_errors(encode_truncate(item_id, 0, end_ms))
            for call_id in self.open_calls:  # a call cut before its output: the model is told, not left waiting
                await self.session.send_tool_result(call_id, "cancelled: the user interrupted", respond=False)
            self.open_calls.clear()
        self._answerer.unsubscribe(self.inbox)
        self._answerer.remember(self, heard, interrupted=True)


# ---------------------------------------------------------------- the backend


class BackendTurns(Protocol):
    """What the live session offers a backend that detects turns itself (`LiveSession`)."""

    @property
    def hearing_user(self) -> bool: ...

    def backend_speech_started(self) -> None: ...

    def backend_speech_stopped(self) -> None: ...

    def begin_backend_turn(self) -> Turn | None: ...

    def backend_error(self, code: ErrorCode, message: str) -> None: ...


@dataclass
class _ModelInput:
    """A user item the model committed by itself: the turn that answers it reads `inbox`."""

    item_id: str
    inbox: asyncio.Queue
    turn: Turn


class RealtimeAnswerer:
    """The engine's `Answerer` for one live session on a realtime model (see the module docstring)."""

    backend = "realtime"

    def __init__(
        self,
        *,
        conversation: Conversation,
        host: RealtimeHost,
        settings: RealtimeSettings,
        voice: str = "",
        transcription_model: str = "",
        fallback: CascadeAnswerer | None = None,
        pool: RealtimePool | None = None,
        turn_detection: TurnDetection = "ours",
    ) -> None:
        self.conversation = conversation
        self._host = host
        self._voice = voice
        self._turn_detection: TurnDetection = turn_detection
        self.detects_turns = turn_detection != "ours"  # the model ends spoken turns (see the module docstring)
        self._transcription_model = transcription_model
        self._fallback = fallback
        self.pool = pool or RealtimePool(settings)
        self.session: RealtimeSession | None = None  # the one in use
        self._history_lock = asyncio.Lock()  # exchanges are written one at a time, in order
        self._pending: RealtimeRun | None = None  # a completed answer still playing: written once played
        self._pending_timer: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()  # context refreshes and retired sessions closing
        self._refresh: asyncio.Task | None = None  # the latest re-read of the host's context
        self._last_write: asyncio.Task | None = None  # the latest exchange being written
        self._closed = False
        # the model's turn detection
        self._turns: BackendTurns | None = None
        self._inboxes: list[asyncio.Queue] = []  # of the exchanges still reading the session's events
        self._model_inputs: dict[str, _ModelInput] = {}  # turn id -> the user item it answers
        self._mic: deque[bytes] = deque()
        self._mic_bytes = 0
        self._mic_ready = asyncio.Event()
        self._live = asyncio.Event()  # the listener reads a usable session
        self._swap_note: dict[str, object] | None = None  # how the listener got its session, for the next turn
        self._prepared = self._spawn(self._prepare(), "prepare")

    @property
    def transcribes(self) -> bool:
        return bool(self._transcription_model)

    def _spawn(self, coro, what: str) -> asyncio.Task:
        task = asyncio.create_task(coro, name=f"live-realtime-{what}-{self.conversation.conversation_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------ context and sessions

    async def _prepare(self) -> None:
        """Read the conversation's persona, history and tools, then start warming a session with them."""
        await self._refresh_context()
        if not self._closed:
            self.pool.start()

    async def _refresh_context(self) -> None:
        try:
            async with asyncio.timeout(CONTEXT_TIMEOUT_S):
                context = await self._host.context(self.conversation)
        except Exception as exc:  # noqa: BLE001 - the model still answers, only without the host's context
            logger.warning("live realtime: reading the conversation's persona and history failed: %r", exc)
            if self.pool.config != SessionConfig():
                return  # keep what the spare already knows
            context = RealtimeContext("", (), ())
        self.pool.set_config(self._config(context))

    def _config(self, context: RealtimeContext) -> SessionConfig:
        return SessionConfig(
            instructions=context.instructions,
            voice=self._voice,
            tools=context.tools,
            turn_detection=self._turn_detection,
            input_transcription_model=self._transcription_model,
            history=context.history,
        )

    async def _session_for(self, turn: Turn) -> RealtimeSession:
        """The session in use while it is good; else the warm spare (a handshake only on a cold start)."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(self._prepared), CONTEXT_TIMEOUT_S)
        if self.detects_turns:
            return await self._listened_session(turn)
        session = self.session
        if session is not None and session.usable and not session.expiring():
            turn.extra["realtime_swap"] = "kept"
            return session
        turn.extra.update(await self._take())
        return self.session  # type: ignore[return-value]

    async def _take(self) -> dict[str, object]:
        """Retire the session in use and take the spare, told the latest exchanges; how it went, for metrics."""
        session = self.session
        if session is not None:
            self._retire(session)
        for latest in ("_last_write", "_refresh"):  # the spare is told the latest exchanges before it takes over
            task = getattr(self, latest)
            if task is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(task), CONTEXT_TIMEOUT_S)
        ready = self.pool.ready
        started = time.monotonic()
        self.session = await self.pool.take(
            None if self.pool.last_error is None else FAIL_FAST_TAKE_S, fail_fast=True
        )
        return {
            "realtime_swap": "warm" if ready else "cold",
            "realtime_take_ms": round((time.monotonic() - started) * 1000, 1),
        }

    async def _listened_session(self, turn: Turn) -> RealtimeSession:
        """The model's turn detection: the session the listener reads (it swaps them, not the turns)."""
        settings = self.pool.settings
        failing = self.pool.last_error is not None
        wait = FAIL_FAST_TAKE_S if failing else settings.connect_timeout + settings.configure_timeout
        try:
            await asyncio.wait_for(self._live.wait(), wait)
        except TimeoutError:
            error = self.pool.last_error or realtime_error(RealtimeErrorCode.TIMEOUT, "no realtime session is ready")
            raise RealtimeFailure(error) from None
        session = self.session
        if session is None or not session.usable:
            raise RealtimeFailure(realtime_error(RealtimeErrorCode.DISCONNECTED, "the realtime session ended"))
        turn.extra.update(self._swap_note or {"realtime_swap": "kept"})
        self._swap_note = None
        return session

    # ------------------------------------------------------------ the model's turn detection

    def listen(self, turns: BackendTurns) -> None:
        """The live session hands over its microphone (`hear`) and takes the turns the model detects."""
        if self._turns is None and self.detects_turns:
            self._turns = turns
            self._spawn(self._listen(), "listen")
            self._spawn(self._send_microphone(), "microphone")

    def hear(self, pcm: bytes) -> None:
        """Microphone PCM16 at 16 kHz, as it arrives: queued for the sender (never waits; oldest dropped first)."""
        self._mic.append(pcm)
        self._mic_bytes += len(pcm)
        while self._mic_bytes > MIC_BACKLOG_MS * INPUT_SAMPLE_RATE * 2 // 1000 and len(self._mic) > 1:
            self._mic_bytes -= len(self._mic.popleft())
        self._mic_ready.set()

    async def _send_microphone(self) -> None:
        """Append what the microphone queued to the session in use, as one event per wake-up."""
        while True:
            await self._mic_ready.wait()
            self._mic_ready.clear()
            session = self.session
            if not self._mic or session is None or not session.usable or not self._live.is_set():
                continue  # held (bounded) until the listener has a session again
            pcm = b"".join(self._mic)
            self._mic.clear()
            self._mic_bytes = 0
            with contextlib.suppress(RealtimeFailure):  # the listener sees the session end
                await session.append_audio(pcm, rate=INPUT_SAMPLE_RATE)

    def subscribe(self) -> asyncio.Queue:
        inbox: asyncio.Queue = asyncio.Queue()
        self._inboxes.append(inbox)
        return inbox

    def unsubscribe(self, inbox: asyncio.Queue | None) -> None:
        if inbox is not None and inbox in self._inboxes:
            self._inboxes.remove(inbox)

    async def _listen(self) -> None:
        """Keep a session, read its events, start the turns the model detects (see the module docstring)."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(self._prepared), CONTEXT_TIMEOUT_S)
        failures = 0
        first = True  # the first session is taken at connect, on no turn's path: its first turn says "kept"
        while not self._closed:
            session = self.session
            if session is None or not session.usable or (session.expiring() and self._idle()):
                try:
                    taken = await self._take()
                    self._swap_note = None if first else taken
                    first = False
                except RealtimeFailure as exc:
                    if failures == 0 and self._turns is not None:  # once per outage, not per retry
                        self._turns.backend_error(error_code(exc.error), exc.error.message)
                    failures += 1
                    await asyncio.sleep(min(5.0, 0.5 * failures))
                    continue
                failures = 0
                session = self.session
            assert session is not None
            self._live.set()
            self._mic_ready.set()  # what the microphone queued meanwhile goes out now
            await self._read(session)
            self._live.clear()
            for inbox in self._inboxes:  # the exchanges reading it learn that it ended
                inbox.put_nowait(None)

    def _idle(self) -> bool:
        return not self._inboxes and not (self._turns is not None and self._turns.hearing_user)

    async def _read(self, session: RealtimeSession) -> None:
        """Until the session ends (or nears its age limit while idle): route each event."""
        while True:
            try:
                event = await asyncio.wait_for(session.next_event(), LISTEN_TICK_S)
            except TimeoutError:
                if session.expiring() and self._idle():
                    return
                continue
            if event is None:
                if self.session is session:
                    self._retire(session)
                return
            self._route(session, event)

    def _route(self, session: RealtimeSession, event: object) -> None:
        turns = self._turns
        for turn_id, waiting in list(self._model_inputs.items()):  # a turn cut before its task ever ran
            if waiting.turn.task is not None and waiting.turn.task.done():
                del self._model_inputs[turn_id]
                self.unsubscribe(waiting.inbox)
        match event:
            case SpeechStarted() if turns is not None:
                turns.backend_speech_started()  # the session's barge-in (the model stops its answer itself)
            case SpeechStopped() if turns is not None:
                turns.backend_speech_stopped()
            case InputCommitted(item_id=item_id) if turns is not None:
                inbox = self.subscribe()  # before the turn exists: its answer's events are kept from here on
                turn = turns.begin_backend_turn()
                if turn is None:  # the session refused it (busy policy): the model's answer is not wanted
                    self.unsubscribe(inbox)
                    self._spawn(self._cancel_unwanted(session), "cancel")
                else:
                    self._model_inputs[turn.id] = _ModelInput(item_id, inbox, turn)
                return
            case RealtimeError() if not self._inboxes:
                logger.info("live realtime: between turns: %s (%s)", event.code.value, event.provider_message)
        for inbox in self._inboxes:
            inbox.put_nowait(event)

    async def _cancel_unwanted(self, session: RealtimeSession) -> None:
        with contextlib.suppress(RealtimeFailure):
            await session.send({**encode_response_cancel(), "event_id": f"{QUIET_EVENT}unwanted_{session.number}"})

    def _retire(self, session: RealtimeSession) -> None:
        if self.session is session:
            self.session = None
        self._spawn(session.aclose(), "retire")

    # ------------------------------------------------------------ a turn

    async def answer(self, turn: Turn) -> None:
        model_input = self._model_inputs.pop(turn.id, None)  # a turn the model's detection started
        inbox = model_input.inbox if model_input else (self.subscribe() if self.detects_turns else None)
        run: RealtimeRun | None = None
        try:
            run = await self._answer(turn, model_input, inbox)
        finally:
            if inbox is not None and (run is None or not turn.cut or turn.agent_run is not run):
                self.unsubscribe(inbox)  # (a cut exchange reads on until `keep_heard`)

    async def _answer(
        self, turn: Turn, model_input: _ModelInput | None, inbox: asyncio.Queue | None
    ) -> RealtimeRun | None:
        turn.extra["backend"] = self.backend
        if turn.text is not None:  # typed, or spoken and already transcribed; else the model transcribes it
            turn.emit(UserTranscribed(turn.id, turn.text, int(time.time() * 1000), turn.viewers))
        turn.set_state("thinking")
        await turn.wait_previous_settled()  # a cut previous answer is truncated first
        self._flush_pending()
        ctx = turn.ctx
        playback = RealtimePlayback(
            turn_id=turn.id,
            emit=turn.emit_playback,
            output=ctx.output,
            mark=turn.mark,
            on_voiced=ctx.echo.remember if ctx.echo else lambda _t: None,
        )
        try:
            session = await self._session_for(turn)
        except RealtimeFailure as exc:
            await self._failed(turn, None, playback, exc.error)
            return None
        turn.extra["realtime_session"] = session.number
        run = RealtimeRun(self, session, turn, playback)
        run.inbox = inbox
        turn.agent_run, turn.stage = run, playback
        try:
            if model_input is None:
                await self._ask(turn, run)
            else:  # the model committed the audio and creates the answer itself
                run.input_item = model_input.item_id
                run.expect_response()
                turn.mark("agent_start")
            await self._stream(turn, run)
        except RealtimeFailure as exc:
            await self._failed(turn, run, playback, exc.error)
            return run
        playback.end()
        if not playback.produced_audio:
            turn.emit(BotReplied(turn.id, turn.reply_text, int(time.time() * 1000)))
        turn.mark("turn_end")
        turn.emit(TurnEnded(turn.id, interrupted=False, text=turn.reply_text))
        turn.emit(turn.metrics())
        turn.set_state("listening")
        self._hold_until_played(run, turn)
        return run

    async def _ask(self, turn: Turn, run: RealtimeRun) -> None:
        session = run.session
        for stale in () if run.inbox is not None else session.pending_events():  # since the last turn
            if isinstance(stale, RealtimeError):  # (a late truncation ack, limits)
                logger.info("live realtime: between turns: %s", stale.code.value)
        if turn.pcm is not None:
            step = INPUT_SAMPLE_RATE * 2  # one second per append event
            for at in range(0, len(turn.pcm), step):
                await session.append_audio(turn.pcm[at : at + step], rate=INPUT_SAMPLE_RATE)
            await session.commit()
        else:
            await session.send_text(turn.text or "")
        run.expect_response()
        await session.create_response()
        turn.mark("agent_start")

    async def _stream(self, turn: Turn, run: RealtimeRun) -> None:
        """Read the answer until its last response is done (tool calls run in between)."""
        idle = turn.ctx.agent_idle_timeout_s
        loop = asyncio.get_running_loop()
        session = run.session
        try:
            async with asyncio.timeout(idle) as deadline:
                while True:
                    event = await run.next_event()
                    if event is None:  # the reader ended without an error event (closed under us)
                        raise RealtimeFailure(session.ended or realtime_error(RealtimeErrorCode.DISCONNECTED))
                    deadline.reschedule(loop.time() + idle)
                    run.take(event)
                    if self._tell(turn, run, event):
                        continue
                    if isinstance(event, ResponseDone):
                        if _of_other_response(run, event.response_id):
                            continue  # the late end of a cut answer
                        if event.error is not None:
                            raise RealtimeFailure(event.error)
                        if run.calls:
                            await self._run_tools(turn, run)
                            continue
                        break
                    if isinstance(event, RealtimeError):
                        if run.ignorable(event) or event.code is RealtimeErrorCode.PROTOCOL:
                            logger.info("live realtime: %s (%s)", event.code.value, event.provider_message)
                            continue
                        raise RealtimeFailure(event)
                if run.voice and run.user_text is None and self.transcribes:
                    deadline.reschedule(loop.time() + TRANSCRIPT_WAIT_S)
                    while run.user_text is None:
                        event = await run.next_event()
                        if event is None:
                            break
                        run.take(event)
                        self._tell(turn, run, event)
        except TimeoutError:
            if not run.response_active:  # only the user's transcript was late
                logger.info("live realtime: no transcript of the user's turn %s", turn.id)
            else:
                raise RealtimeFailure(
                    realtime_error(RealtimeErrorCode.TIMEOUT, f"no answer event for {idle:.0f} s")
                ) from None
        if run.voice and not run.user_told:
            self._tell_user(turn, run)

    def _tell(self, turn: Turn, run: RealtimeRun, event: object) -> bool:
        """Send the client what an event shows; True when the event needs nothing more."""
        match event:
            case AudioDelta():
                if not _of_other_response(run, event.response_id):
                    run.playback.audio(event)
                return True
            case TranscriptDelta(text=text) if text and not _of_other_response(run, event.response_id):
                turn.mark("llm_first_token")
                turn.reply_text += text
                turn.emit(AgentTextDelta(turn.id, text))
                if event.spoken:
                    run.playback.text(event)
                return True
            case InputTranscript(final=True) if run.voice and not run.user_told and run.owns_input(event.item_id):
                self._tell_user(turn, run)
                return True
            case InputTranscriptFailed(error=error):
                logger.info("live realtime: the model could not transcribe the user: %s", error.provider_message)
                return True
        return not isinstance(event, ResponseDone | RealtimeError)

    def _tell_user(self, turn: Turn, run: RealtimeRun) -> None:
        run.user_told = True
        if run.user_text:
            turn.emit(UserTranscribed(turn.id, run.user_text, int(time.time() * 1000), turn.viewers))

    async def _run_tools(self, turn: Turn, run: RealtimeRun) -> None:
        """The model asked for tools: run each through the host, return the outputs, let it go on."""
        calls, run.calls = run.calls, []
        names = turn.extra.setdefault("tools", [])
        for call in calls:
            try:
                arguments = call.parsed_arguments()
            except ValueError as exc:
                output = f"error: the arguments are not a JSON object: {exc}"
            else:
                outcome = await self._host.call_tool(self.conversation, call.name, arguments)
                output = outcome.output
            names.append(call.name)  # type: ignore[union-attr]
            await run.session.send_tool_result(call.call_id, output, respond=False)
            run.open_calls.remove(call.call_id)
        run.expect_response()
        await run.session.create_response()

    # ------------------------------------------------------------ failures

    async def _failed(
        self, turn: Turn, run: RealtimeRun | None, playback: RealtimePlayback, error: RealtimeError
    ) -> None:
        """A provider failure: a coded error; then the cascade answers, or the turn ends with what was said."""
        session = run.session if run is not None else None
        if session is not None and error.code is not RealtimeErrorCode.REFUSED:
            self._retire(session)  # the next turn takes a fresh session, which knows the host's history
        words = run.user_text if run is not None and run.user_told else turn.text
        # the cascade answers the words the client was told, or transcribes the utterance (none is held here
        # when the model's detection took the audio)
        answerable = words is not None or bool(turn.pcm)
        fallback = self._fallback if (self._fallback is not None and not playback.produced_audio) else None
        if not answerable:
            fallback = None
        if error.code is RealtimeErrorCode.REFUSED:
            fallback = None  # the model's refusal is its answer
        message = error.message + (" This turn is answered by the cascaded backend." if fallback else "")
        logger.warning("live realtime: turn %s: %s %s", turn.id, error.code.value, error.provider_message)
        turn.emit(ErrorRaised(error_code(error), message, turn.id))
        turn.extra["realtime_error"] = error.code.value
        if fallback is not None:
            playback.stop()
            turn.stage = turn.agent_run = None
            turn.reply_text = ""  # text the model wrote before failing is not part of the cascade's answer
            turn.extra["backend"] = fallback.backend
            if words is not None:  # the client was told them: the cascade answers them
                await fallback.reply(turn, words)
            else:  # its own speech-to-text first
                await fallback.answer(turn)
            self._refresh_later()  # the cascade wrote this exchange into history
            return
        playback.end()
        if not playback.produced_audio and turn.reply_text:
            turn.emit(BotReplied(turn.id, turn.reply_text, int(time.time() * 1000)))
        turn.mark("turn_end")
        turn.emit(TurnEnded(turn.id, interrupted=False, text=turn.reply_text))
        turn.emit(turn.metrics())
        turn.set_state("listening")
        if run is not None:  # what the user said, and what of the answer came through
            self.remember(run, turn.reply_text, interrupted=bool(turn.reply_text))
        elif turn.text:  # no session at all: the words are still kept
            self._write(turn.text, "", interrupted=False)

    # ------------------------------------------------------------ history

    def _hold_until_played(self, run: RealtimeRun, turn: Turn) -> None:
        """Write a completed answer once the client has played it: a cut before that keeps only what was heard."""
        self._pending = run
        delay = turn.unplayed_ms() / 1000 + REMEMBER_MARGIN_S
        self._pending_timer = self._spawn(self._remember_once_played(run, delay), "remember")

    async def _remember_once_played(self, run: RealtimeRun, delay: float) -> None:
        await asyncio.sleep(delay)
        while (left := run.turn.unplayed_ms()) > 0:  # its playback was paused meanwhile
            await asyncio.sleep(left / 1000 + REMEMBER_MARGIN_S)
        self._pending_timer = None  # from here on nothing cancels this task
        self.remember(run, run.turn.reply_text, interrupted=False)

    def _flush_pending(self) -> None:
        """The next turn starts, or the session ends: a completed answer still playing is written now."""
        if self._pending is not None:
            self.remember(self._pending, self._pending.turn.reply_text, interrupted=False)

    def remember(self, run: RealtimeRun, assistant_text: str, *, interrupted: bool) -> None:
        """Write one exchange (once per run) into the host conversation: in order, without waiting for it."""
        if self._pending is run:  # written now, or cut while it played: the heard part replaces the whole
            self._pending = None
            if self._pending_timer is not None:
                self._pending_timer.cancel()
                self._pending_timer = None
        if run.remembered:
            return
        run.remembered = True
        self._write(run.user_text or UNTRANSCRIBED, assistant_text, interrupted=interrupted)

    def _write(self, user_text: str, assistant_text: str, *, interrupted: bool) -> None:
        """Start writing one exchange. Writes queue on one lock, so they land in the order they started."""
        self._last_write = self._spawn(self._write_now(user_text, assistant_text, interrupted), "write")

    async def _write_now(self, user_text: str, assistant_text: str, interrupted: bool) -> None:
        try:
            async with self._history_lock:
                await self._host.remember(self.conversation, user_text, assistant_text, interrupted=interrupted)
        except Exception as exc:  # noqa: BLE001 - the conversation goes on; the log says what was not saved
            logger.error("live realtime: writing the exchange to the conversation failed: %r", exc)
            return
        self._refresh_later()

    def _refresh_later(self) -> None:
        """Re-read the host's context (history grew) for the next session the pool hands out."""
        if not self._closed:
            self._refresh = self._spawn(self._refresh_context(), "refresh")

    # ------------------------------------------------------------ end

    async def aclose(self) -> None:
        """Write a completed answer still waiting to be, close the session in use, the spare and every task
        (the session bounds the whole)."""
        if self._closed:
            return
        self._flush_pending()
        self._closed = True  # (after the flush: no context refresh starts from here on)
        finishing = ("live-realtime-retire", "live-realtime-write")  # closing a session, saving history
        await cancel_and_wait([t for t in self._tasks if not t.get_name().startswith(finishing)])
        session, self.session = self.session, None
        if session is not None:
            await session.aclose()
        await self.pool.aclose()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=CONTEXT_TIMEOUT_S)


def _of_other_response(run: RealtimeRun, response_id: str) -> bool:
    """An event of a response this run did not ask for (a late one of a cut answer)."""
    return bool(response_id and run.response_id and response_id != run.response_id)
