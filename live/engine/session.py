"""A live session: one conversation, its turns, its microphone stream.

`handle()` is synchronous and never waits for a turn, so an `interrupt` is
acted on the moment it is read. Every task the session starts is owned here
and ended by `close()`. The session owns the agent state (listening, thinking,
speaking) and decides, in `_barge_in`, when the user cuts the answer; the
`Turn` does the cutting. With server VAD and `end_of_turn=model`, `TurnTaking`
decides when the user is done (the end-of-turn model at a short pause).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Literal

from ..audio.vad import SpeechConfirmed, SpeechDiscarded, SpeechEnded, SpeechPaused, SpeechResumed, SpeechStarted
from ..config import LiveSettings
from ..errors import ErrorCode
from .cascade import CascadeAnswerer
from .echo import EchoGuard
from .events import (
    AgentState,
    AppendAudio,
    Command,
    ConfigureOutput,
    EndSpeaking,
    ErrorRaised,
    Event,
    Interrupt,
    OutputConfigured,
    Ping,
    Pong,
    ReportPlayback,
    SendText,
    SessionStarted,
    SetMuted,
    SpeechDetected,
    StartSpeaking,
    StateChanged,
    SubmitUtterance,
    ViewerEvent,
)
from .ports import Agent, Conversation, Speech
from .speech import OutputFormat
from .tasks import wait_ended
from .turn import AGENT_CLOSE_TIMEOUT_S, INPUT_SAMPLE_RATE, Answerer, Turn, TurnContext
from .turn_taking import TurnTaking, end_of_turn_settings
from .vad_worker import ServerVad, VadStream

BargeInCause = Literal["client", "speech", "new_input"]


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
        answerer: Answerer | None = None,
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
            set_state=self._set_state,
            answerer=answerer or CascadeAnswerer(),
            stt_timeout_s=settings.stt_timeout_s,
            tts_timeout_s=settings.tts_timeout_s,
            agent_idle_timeout_s=settings.agent_idle_timeout_s,
        )
        self._vad = vad  # server VAD on: the server's shared VAD worker runs this session's stream
        self._vad_stream: VadStream | None = None
        self._turn_taking: TurnTaking | None = None  # server VAD with end_of_turn=model: when the user is done
        self.vad_lags_ms: deque[float] = deque(maxlen=1024)  # per VAD cycle: oldest audio queued -> its events
        self._reports_playback = reports_playback
        self.state: AgentState = "listening"
        self._turn: Turn | None = None  # the running or last turn
        self._finalizers: set[asyncio.Task] = set()  # cut turns cutting history to what was heard
        self._utterance: bytearray | None = None
        self._utterance_started = 0.0  # clock time of start_speaking
        self._stamp: str | None = None
        self._utterance_capped = False
        self._user_speaking = False  # server VAD: between speech_start and its end
        self.muted = False
        self.closed = False

    def __repr__(self) -> str:
        return f"LiveSession({self.id}, user={self.conversation.username})"

    @property
    def busy(self) -> bool:
        return self._turn is not None and self._turn.running

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
        return self._turn.unplayed_ms() / 1000 if self._turn is not None else 0.0

    # ------------------------------------------------------------ lifecycle

    def open(self) -> None:
        if self._vad is not None:
            stream = self._vad_stream = self._vad.open(self._on_vad, self.vad_lags_ms)
            if self.settings.end_of_turn == "model":
                self._turn_taking = TurnTaking(
                    end_of_turn_settings(self.settings),
                    self._vad.end_of_turn,
                    stream.end_utterance,
                    unavailable_reason=self._vad.end_of_turn_off_reason,
                    clock=self._clock,
                )
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
        self._sink(StateChanged(self.state))  # the first state; later ones only on a change

    async def close(self) -> None:
        """Single teardown path: ends the turn (keeping heard history), VAD and finalizers."""
        if self.closed:
            return
        self.closed = True
        if self._vad_stream is not None:
            self._vad_stream.close()  # unregisters from the worker and releases the endpointer now
            self._vad_stream = None
        if self._turn_taking is not None:
            self._turn_taking.close()
        turn = self._turn
        if turn is not None and turn.running and turn.interrupt(tell_client=False):
            self._finalize(turn)
        await wait_ended(self._finalizers, AGENT_CLOSE_TIMEOUT_S + 5)  # finalize() bounds its own waits
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
                now = self._clock()
                self._begin_turn(pcm=pcm, spoken=(now - len(pcm) / (2 * INPUT_SAMPLE_RATE), now))
            case SendText(text=text, viewers=viewers):
                self._begin_turn(text=text, viewers=viewers)
            case Interrupt(turn_id=turn_id, played_ms=played_ms, heard_text=heard):
                if played_ms is not None:
                    self._reports_playback = True
                self._barge_in("client", turn_id=turn_id, played_ms=played_ms, heard_text=heard)
            case ReportPlayback(turn_id=turn_id, played_ms=played_ms):
                self._reports_playback = True
                turn = self._turn
                if turn is not None and (turn_id is None or turn_id == turn.id):
                    turn.report(played_ms)
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
        self._utterance_started = self._clock()
        self._barge_in("speech")

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
        self._begin_turn(pcm=pcm, spoken=(self._utterance_started, self._clock()))

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
        taking = self._turn_taking
        match event:
            case SpeechStarted():
                self._user_speaking = True
                self._sink(SpeechDetected("speech_start"))
            case SpeechConfirmed(speech_ms=speech_ms):
                self._barge_in("speech", speech_ms=speech_ms)
            case SpeechPaused():
                if taking is not None:
                    taking.on_paused(event)
            case SpeechResumed():
                if taking is not None:
                    taking.on_resumed()
            case SpeechEnded(pcm=pcm):
                self._user_speaking = False
                self._sink(SpeechDetected("speech_end"))
                now = self._clock()
                # The turn's clock starts at the last voiced frame, not when the wait for more speech ended.
                speech_end = now - event.silence_ms / 1000
                if taking is not None:
                    decided: dict[str, object] = {"eot_mode": "model", **taking.on_ended(event)}
                else:
                    decided = {"eot_mode": "silence", "eot_reason": "forced" if event.forced else "silence",
                               "eot_silence_ms": event.silence_ms}  # fmt: skip
                spoken = (speech_end - event.duration_ms / 1000, speech_end)
                self._begin_turn(pcm=pcm, spoken=spoken, started_at=speech_end, decided_at=now, decided=decided)
            case SpeechDiscarded():
                self._user_speaking = False
                if taking is not None:
                    taking.reset()
                self._sink(SpeechDetected("speech_end"))

    # ------------------------------------------------------------ turns

    def _begin_turn(
        self,
        *,
        text: str | None = None,
        pcm: bytes | None = None,
        viewers: tuple[ViewerEvent, ...] = (),
        spoken: tuple[float, float] | None = None,
        started_at: float | None = None,
        decided_at: float | None = None,
        decided: dict[str, object] | None = None,
    ) -> None:
        """Start the next turn. For an utterance: `spoken` is when it was said (clock times),
        `started_at` the end of the user's speech, `decided_at` when its end was decided."""
        previous = self._turn
        # An echo needs the character's audio playing while the user spoke (checked before a barge-in cuts it).
        echo_possible = spoken is not None and previous is not None and previous.played_during(*spoken)
        if not self._barge_in("new_input"):
            return
        turn = Turn(
            self._ctx, self._sink, text=text, pcm=pcm, previous=previous, viewers=viewers,
            started_at=started_at, clock=self._clock, echo_possible=echo_possible,
        )  # fmt: skip
        if decided_at is not None:
            turn.marks["eot_decided"] = decided_at
        if decided:
            turn.extra.update(decided)
        self._turn = turn
        turn.start(asyncio.create_task(turn.run(), name=f"live-turn-{turn.id}"))

    def _set_state(self, state: AgentState) -> None:
        if state != self.state:
            self.state = state
            self._sink(StateChanged(state))

    # ------------------------------------------------------------ barge-in

    def _barge_in(
        self,
        cause: BargeInCause,
        *,
        turn_id: str | None = None,
        speech_ms: int | None = None,
        played_ms: int | None = None,
        heard_text: str | None = None,
    ) -> bool:
        """The one place that decides whether the user cuts the answer, running or still playing.

        - `client`: an `interrupt` (of `turn_id`, if named) always cuts;
        - `speech`: the user speaks (`start_speaking`, or server VAD heard `speech_ms`
          of speech): cuts when barge-in is on, the busy policy is `interrupt` and the
          speech is long enough;
        - `new_input`: an utterance or text starts the next turn: cuts, except that the
          busy policy `reject` refuses the new input while a turn runs.

        Returns False only when the new input must not start a turn.
        """
        turn = self._turn
        if turn is None or (turn_id is not None and turn_id != turn.id):
            return True
        settings = self.settings
        if cause == "speech" and not (
            settings.barge_in_enabled
            and settings.busy_policy == "interrupt"
            and (speech_ms is None or speech_ms >= settings.barge_in_min_speech_ms)
        ):
            return True
        if cause == "new_input" and turn.running and settings.busy_policy == "reject":
            self._error(ErrorCode.PROCESSING_ERROR, "Session is busy", turn.id)
            return False
        if turn.interrupt(played_ms, heard_text, await_report=self._reports_playback):
            self._set_state("listening")
            self._finalize(turn)
        return True

    def _finalize(self, turn: Turn) -> None:
        finalizer = asyncio.create_task(turn.finalize(), name=f"live-finalize-{turn.id}")
        self._finalizers.add(finalizer)
        finalizer.add_done_callback(self._finalizers.discard)

    def _error(self, code: ErrorCode, message: str, turn_id: str | None = None) -> None:
        self._sink(ErrorRaised(code, message, turn_id))
