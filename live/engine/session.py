"""A live session: one conversation, its turns, its microphone stream.

`handle()` is synchronous and never waits for a turn, so an `interrupt` is
acted on the moment it is read. Every task the session starts is owned here
and ended by `close()`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace

from ..audio.vad import SpeechConfirmed, SpeechDiscarded, SpeechEnded, SpeechStarted
from ..config import LiveSettings
from ..errors import ErrorCode
from .echo import EchoGuard
from .events import (
    AppendAudio,
    Command,
    ConfigureOutput,
    EndSpeaking,
    ErrorRaised,
    Event,
    Interrupt,
    OutputConfigured,
    Ping,
    PlaybackStopped,
    Pong,
    ReportPlayback,
    SendText,
    SessionStarted,
    SetMuted,
    SpeechDetected,
    StartSpeaking,
    StateChanged,
    SubmitUtterance,
    TurnEnded,
    ViewerEvent,
)
from .ports import Agent, Conversation, Speech
from .speech import OutputFormat
from .turn import INPUT_SAMPLE_RATE, Turn, TurnContext
from .vad_worker import ServerVad, VadStream

log = logging.getLogger("astrbot")

class LiveSession:
    def __init__(
        self,
        *,
        session_id: str,
        conversation: Conversation,
        settings: LiveSettings,
        agent: Agent,
        speech: Speech,
        sink: Callable[[Event], None],
        vad: ServerVad | None = None,
        output: OutputFormat | None = None,
        reports_playback: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.id = session_id
        self.conversation = conversation
        self.settings = settings
        self._sink = sink
        self._clock = clock
        self._ctx = TurnContext(
            conversation=conversation,
            agent=agent,
            speech=speech,
            output=output or OutputFormat(settings.output_audio_format, settings.output_sample_rate),
            fast_first_clause=settings.first_clause_fast_path,
            tts_parallelism=settings.tts_parallelism,
            echo=EchoGuard() if settings.echo_guard else None,
            stt_timeout_s=settings.stt_timeout_s,
            tts_timeout_s=settings.tts_timeout_s,
            agent_idle_timeout_s=settings.agent_idle_timeout_s,
        )
        self._vad = vad  # server VAD on: the server's shared VAD worker runs this session's stream
        self._vad_stream: VadStream | None = None
        self.vad_lags_ms: deque[float] = deque(maxlen=1024)  # per VAD cycle: oldest audio queued -> its events
        self._reports_playback = reports_playback
        self._turn: Turn | None = None  # the running or last turn
        self._finalizers: set[asyncio.Task] = set()
        self._utterance: bytearray | None = None
        self._stamp: str | None = None
        self._utterance_capped = False
        self._user_speaking = False  # server VAD: between speech_start and its end
        self.muted = False
        self.closed = False

    def __repr__(self) -> str:
        return f"LiveSession({self.id}, user={self.conversation.username})"

    @property
    def busy(self) -> bool:
        return self._turn is not None and not self._turn.done

    @property
    def hearing_user(self) -> bool:
        """The user is mid-utterance (client-delimited or heard by server VAD)."""
        return self._utterance is not None or self._user_speaking

    async def wait_until_idle(self) -> None:
        """Return once no turn is running."""
        while (turn := self._turn) is not None and turn.task is not None and not turn.task.done():
            await asyncio.wait({turn.task})

    def playback_remaining_s(self) -> float:
        """How long the client should still be playing the last answer (an estimate)."""
        turn = self._turn
        if turn is None or turn.interrupted or turn.stage is None or not turn.stage.produced_audio:
            return 0.0
        return max(0.0, (turn.stage.audio_ms - turn.estimated_played_ms()) / 1000)

    # ------------------------------------------------------------ lifecycle

    def open(self) -> None:
        if self._vad is not None:
            self._vad_stream = self._vad.open(self._on_vad, self.vad_lags_ms)
        self._sink(
            SessionStarted(
                session_id=self.id,
                conversation_id=self.conversation.conversation_id,
                username=self.conversation.username,
                server_vad=self._vad is not None,
                output_format=self._ctx.output.audio_format,
                output_sample_rate=self._ctx.output.sample_rate,
            )
        )
        self._sink(StateChanged("listening"))

    async def close(self) -> None:
        """Single teardown path: ends the turn (keeping heard history), VAD and finalizers."""
        if self.closed:
            return
        self.closed = True
        if self._vad_stream is not None:
            self._vad_stream.close()  # unregisters from the worker and releases the endpointer now
            self._vad_stream = None
        turn = self._turn
        if turn is not None and not turn.done:
            self._interrupt(turn, played_ms=None, notify=False)
        if self._finalizers:
            await asyncio.gather(*list(self._finalizers), return_exceptions=True)
        self._turn = None

    # ------------------------------------------------------------ commands

    def handle(self, command: Command) -> None:
        if self.closed:
            return
        match command:
            case AppendAudio(pcm=pcm):
                self._on_audio(pcm)
            case StartSpeaking(stamp=stamp):
                self._on_start_speaking(stamp)
            case EndSpeaking(stamp=stamp):
                self._on_end_speaking(stamp)
            case SubmitUtterance(pcm=pcm):
                self._begin_turn(pcm=pcm)
            case SendText(text=text, viewers=viewers):
                self._begin_turn(text=text, viewers=viewers)
            case Interrupt(turn_id=turn_id, played_ms=played_ms, heard_text=heard):
                if played_ms is not None:
                    self._reports_playback = True
                turn = self._turn
                if turn is not None and (turn_id is None or turn_id == turn.id):
                    if heard is not None:
                        turn.heard_override = heard
                    self._interrupt(turn, played_ms)
            case ReportPlayback(turn_id=turn_id, played_ms=played_ms):
                self._reports_playback = True
                turn = self._turn
                if turn is not None and (turn_id is None or turn_id == turn.id):
                    turn.report_played(played_ms)
            case SetMuted(muted=muted):
                self.muted = muted
            case Ping(payload=payload):
                self._sink(Pong(payload))
            case ConfigureOutput(audio_format=fmt, sample_rate=rate):
                self._configure_output(fmt, rate)
            case ViewerEvent():
                self._error(ErrorCode.NOT_IN_ROOM, "viewer_event needs a live room: connect with ?room=NAME")

    def _configure_output(self, fmt: str, rate: int) -> None:
        if fmt not in ("wav", "pcm16") or not (rate == 0 or 8000 <= rate <= 48000):
            self._error(ErrorCode.UNSUPPORTED_FORMAT, "output audio must be wav or pcm16, at 8000-48000 Hz or 0")
            return
        self._ctx.output = replace(self._ctx.output, audio_format=fmt, sample_rate=rate)
        self._sink(OutputConfigured(fmt, rate))

    # ------------------------------------------------------------ audio in

    def _on_start_speaking(self, stamp: str) -> None:
        self._utterance, self._stamp, self._utterance_capped = bytearray(), stamp, False
        if self.busy and self.settings.busy_policy == "interrupt" and self.settings.barge_in_enabled:
            self._interrupt(self._turn, played_ms=None)  # type: ignore[arg-type]

    def _on_end_speaking(self, stamp: str) -> None:
        if self._utterance is None:
            self._error(ErrorCode.NOT_SPEAKING, "end_speaking without start_speaking")
            return
        if stamp != self._stamp:
            self._error(ErrorCode.STAMP_MISMATCH, "end_speaking stamp does not match start_speaking")
            return
        pcm, self._utterance, self._stamp = bytes(self._utterance), None, None
        if not pcm:
            self._error(ErrorCode.INVALID_AUDIO, "the utterance held no audio")
            return
        self._begin_turn(pcm=pcm)

    def _on_audio(self, pcm: bytes) -> None:
        if self._utterance is not None:
            limit = self.settings.limits.max_utterance_ms
            if (len(self._utterance) + len(pcm)) * 1000 // (2 * INPUT_SAMPLE_RATE) > limit:
                if not self._utterance_capped:
                    self._utterance_capped = True
                    self._error(
                        ErrorCode.UTTERANCE_TOO_LONG,
                        f"utterance longer than {limit // 1000} s; the rest is ignored",
                    )
                return
            self._utterance += pcm
            return
        if self.muted:
            return
        if self._vad_stream is None:
            self._error(ErrorCode.NOT_SPEAKING, "audio outside start_speaking/end_speaking and server VAD is off")
            return
        self._vad_stream.push(pcm)  # a lagging stream drops its oldest audio (bounded backlog)

    def _on_vad(self, event) -> None:
        match event:
            case SpeechStarted():
                self._user_speaking = True
                self._sink(SpeechDetected("speech_start"))
            case SpeechConfirmed(speech_ms=speech_ms):
                turn = self._turn
                if (
                    turn is not None
                    and (self.busy or self._still_playing(turn))
                    and self.settings.barge_in_enabled
                    and self.settings.busy_policy == "interrupt"
                    and speech_ms >= self.settings.barge_in_min_speech_ms
                ):
                    self._interrupt(turn, played_ms=None)
            case SpeechEnded(pcm=pcm):
                self._user_speaking = False
                self._sink(SpeechDetected("speech_end"))
                self._begin_turn(pcm=pcm)
            case SpeechDiscarded():
                self._user_speaking = False
                self._sink(SpeechDetected("speech_end"))

    # ------------------------------------------------------------ turns

    def _begin_turn(
        self, *, text: str | None = None, pcm: bytes | None = None, viewers: tuple[ViewerEvent, ...] = ()
    ) -> None:
        previous = self._turn
        if previous is not None and not previous.done:
            if self.settings.busy_policy == "reject":
                self._error(ErrorCode.PROCESSING_ERROR, "Session is busy", previous.id)
                return
            self._interrupt(previous, played_ms=None)
        elif previous is not None and self._still_playing(previous):
            self._interrupt(previous, played_ms=None)
        turn = Turn(self._ctx, self._sink, text=text, pcm=pcm, previous=previous, viewers=viewers, clock=self._clock)
        self._turn = turn
        turn.task = asyncio.create_task(self._run_turn(turn), name=f"live-turn-{turn.id}")

    async def _run_turn(self, turn: Turn) -> None:
        try:
            await turn.run()
        except asyncio.CancelledError:
            if not turn.interrupted:
                raise
        except Exception as exc:
            log.error("live turn %s failed: %s", turn.id, exc, exc_info=True)
            turn.emit(ErrorRaised(ErrorCode.AGENT_FAILED, f"the turn failed: {exc}", turn.id))
            turn.emit(TurnEnded(turn.id, interrupted=False, text=turn.reply_text))
            turn.emit(StateChanged("listening"))
        finally:
            if not turn.interrupted:
                turn.finalized.set()

    def _still_playing(self, turn: Turn) -> bool:
        """The server sent all audio, but the client is still playing it."""
        if turn.interrupted or turn.stage is None or not turn.stage.produced_audio:
            return False
        return turn.estimated_played_ms() < turn.stage.audio_ms

    def _interrupt(self, turn: Turn, played_ms: int | None, notify: bool = True) -> None:
        """Barge-in, all at once: stop_play out, agent stopped, TTS cancelled, audio dropped."""
        if turn.interrupted:
            if played_ms is not None:
                turn.report_played(played_ms)
            return
        running = not turn.done
        if not running:
            played_all = turn.stage is None or (played_ms if played_ms is not None else turn.estimated_played_ms()) >= turn.stage.audio_ms
            if played_all:
                return  # the whole answer was heard: nothing to stop, nothing to cut
        turn.interrupted = True
        if played_ms is not None:
            turn.report_played(played_ms)
        turn.silenced = True
        if turn.agent_run is not None:
            turn.agent_run.stop()
        if turn.task is not None:
            turn.task.cancel()
        turn.finalized.clear()
        if notify:
            self._sink(PlaybackStopped(turn.id))
            if running:
                self._sink(TurnEnded(turn.id, interrupted=True, text=""))
                self._sink(StateChanged("listening"))
        finalizer = asyncio.create_task(
            turn.finalize(wait_for_report=self._reports_playback and notify),
            name=f"live-finalize-{turn.id}",
        )
        self._finalizers.add(finalizer)
        finalizer.add_done_callback(self._finalizers.discard)

    def _error(self, code: ErrorCode, message: str, turn_id: str | None = None) -> None:
        self._sink(ErrorRaised(code, message, turn_id))
