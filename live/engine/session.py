"""A live session: one conversation, its turns, its microphone stream.

`handle()` is synchronous and never waits for a turn, so an `interrupt` is
acted on the moment it is read. Every task the session starts is owned here
and ended by `close()`. The session owns the agent state (listening, thinking,
speaking) and decides, in `_barge_in`, when the user cuts the answer; the
`Turn` does the cutting. With server VAD and `end_of_turn=model`, `TurnTaking`
decides when the user is done (the end-of-turn model at a short pause).

Pause-on-speech (`pause_play`, a client that holds playback on `pause_play`):
speech over the answer first pauses it; the utterance cuts it only when meant
(`barge_in.verdict`: long, or enough words that are not a backchannel). The
utterance of a paused answer is transcribed once, by `_judge`: meant, it becomes
the next turn with that transcript; otherwise the answer resumes whole and the
client is told why (`NothingHeard`). The agent state does not change while paused.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Literal, Protocol, runtime_checkable

from ..audio.vad import SpeechConfirmed, SpeechDiscarded, SpeechEnded, SpeechPaused, SpeechResumed, SpeechStarted
from ..config import LiveSettings
from ..errors import ErrorCode
from ..log import logger
from ..audio.wav import pcm16_to_wav
from .barge_in import verdict
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
    NothingHeard,
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
from .tasks import cancel_and_wait, wait_ended
from .turn import AGENT_CLOSE_TIMEOUT_S, INPUT_SAMPLE_RATE, Answerer, Turn, TurnContext
from .turn_taking import TurnTaking, end_of_turn_settings
from .vad_worker import ServerVad, VadStream

BargeInCause = Literal["client", "speech", "new_input"]
ANSWERER_CLOSE_TIMEOUT_S = 10.0  # the realtime backend saves a last exchange and closes its provider sessions


@runtime_checkable
class DetectsTurns(Protocol):
    """A backend that decides spoken turns itself (a realtime model's own turn detection): it hears the
    microphone instead of our VAD, and calls the session's `backend_*` methods (and `begin_backend_turn`)."""

    detects_turns: bool

    def listen(self, session: LiveSession) -> None: ...

    def hear(self, pcm: bytes) -> None: ...


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
        pause_play: bool = False,
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
        # the backend's own turn detection replaces our VAD: the microphone goes to it (`_on_audio`)
        self._backend_turns = isinstance(answerer, DetectsTurns) and answerer.detects_turns
        self._backend_speech: list[float | None] = [None, None]  # its speech start and stop (clock)
        self._vad_stream: VadStream | None = None
        self._turn_taking: TurnTaking | None = None  # server VAD with end_of_turn=model: when the user is done
        self.vad_lags_ms: deque[float] = deque(maxlen=1024)  # per VAD cycle: oldest audio queued -> its events
        self._reports_playback = reports_playback
        self._pause_play = pause_play  # the client holds playback on `pause_play`: speech pauses before it cuts
        self._judging: asyncio.Task | None = None  # the verdict on an utterance spoken over a paused answer
        self._speculation: Turn | None = None  # the held answer of the utterance's current pause
        self._dropped: Turn | None = None  # a speculation dropped since the last turn: history waits for it
        self._speculations_dropped = 0  # in the current utterance, for its metrics
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

    @property
    def paused(self) -> bool:
        """The answer's playback is paused while the user's speech over it is judged (`pause_play`)."""
        return self._turn is not None and self._turn.paused

    async def wait_until_idle(self) -> None:
        """Return once no turn is running and no utterance is being judged."""
        while True:
            if (judging := self._judging) is not None and not judging.done():
                await asyncio.wait({judging})
            elif (turn := self._turn) is not None and turn.task is not None and not turn.task.done():
                await asyncio.wait({turn.task})
            else:
                return

    def playback_remaining_s(self) -> float:
        """How long the client should still be playing the last answer (an estimate)."""
        return self._turn.unplayed_ms() / 1000 if self._turn is not None else 0.0

    # ------------------------------------------------------------ lifecycle

    def open(self) -> None:
        if self._backend_turns:
            self._ctx.answerer.listen(self)  # type: ignore[attr-defined]
        elif self._vad is not None:
            stream = self._vad_stream = self._vad.open(self._on_vad, self.vad_lags_ms)
            if self.settings.end_of_turn == "model":
                self._turn_taking = TurnTaking(
                    end_of_turn_settings(self.settings),
                    self._vad.end_of_turn,
                    stream.end_utterance,
                    unavailable_reason=self._vad.end_of_turn_off_reason,
                    clock=self._clock,
                    speculator=self,
                )
        self._sink(
            SessionStarted(
                session_id=self.id,
                conversation_id=self.conversation.conversation_id,
                username=self.conversation.username,
                server_vad=self._vad is not None or self._backend_turns,
                output_format=self._ctx.output.audio_format,
                output_sample_rate=self._ctx.output.sample_rate,
                backend=self._ctx.answerer.backend,
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
        self.drop_speculation()
        await cancel_and_wait([self._judging])
        turn = self._turn
        if turn is not None and turn.running and turn.interrupt(tell_client=False):
            self._finalize(turn)
        await wait_ended(self._finalizers, AGENT_CLOSE_TIMEOUT_S + 5)  # finalize() bounds its own waits
        self._turn = None
        try:  # after the finalizers: a cut answer's heard part is kept through the backend first
            await asyncio.wait_for(self._ctx.answerer.aclose(), ANSWERER_CLOSE_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - closing must go on; the backend bounds its own waits
            logger.warning("live session %s: closing the %s backend failed: %r", self.id, self._ctx.answerer.backend, exc)

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
            case SubmitUtterance(pcm=pcm) if self._backend_turns:
                self._ctx.answerer.hear(pcm)  # type: ignore[attr-defined]  # the backend decides the turn
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
        if self._backend_turns:  # its audio went to the backend, whose detection ends the turn
            self._utterance = self._stamp = None
            return
        pcm, self._utterance, self._stamp = bytes(self._utterance), None, None
        if not pcm:
            self._error(ErrorCode.INVALID_AUDIO, "the utterance held no audio")
            return
        self._begin_turn(pcm=pcm, spoken=(self._utterance_started, self._clock()))

    def _on_audio(self, pcm: bytes) -> None:
        if self._backend_turns:  # the backend hears all of it (its backlog is bounded)
            if not self.muted:
                self._ctx.answerer.hear(pcm)  # type: ignore[attr-defined]
            return
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
            if self._turn is not None and self._turn.paused:  # a long utterance is meant: cut without its end
                self._barge_in("speech", speech_ms=len(self._utterance) * 1000 // (2 * INPUT_SAMPLE_RATE))
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
                if self._pause_play:
                    self._barge_in("speech", speech_ms=0)  # pauses the answer at once
            case SpeechConfirmed(speech_ms=speech_ms):
                self._barge_in("speech", speech_ms=speech_ms)
            case SpeechPaused():
                if taking is not None:
                    taking.on_paused(event, answer_waiting=self.paused)
            case SpeechResumed():
                if taking is not None:
                    taking.on_resumed()  # drops a speculation: the same utterance goes on
            case SpeechEnded(pcm=pcm):
                self._user_speaking = False
                self._sink(SpeechDetected("speech_end"))
                now = self._clock()
                # The turn's clock starts at the last voiced frame, not when the wait for more speech ended.
                speech_end = now - event.silence_ms / 1000
                if taking is not None:
                    decided: dict[str, object] = {"eot_mode": "model", **taking.on_ended(event)}
                    if taking.settings.speculate:
                        decided |= {"speculation": None, "speculations_dropped": self._speculations_dropped}
                        self._speculations_dropped = 0
                else:
                    decided = {"eot_mode": "silence", "eot_reason": "forced" if event.forced else "silence",
                               "eot_silence_ms": event.silence_ms}  # fmt: skip
                if self._commit_speculation(now, decided):
                    return
                spoken = (speech_end - event.duration_ms / 1000, speech_end)
                self._begin_turn(pcm=pcm, spoken=spoken, started_at=speech_end, decided_at=now, decided=decided)
            case SpeechDiscarded():
                self._user_speaking = False
                self.drop_speculation()
                self._speculations_dropped = 0
                if taking is not None:
                    taking.reset()
                self._sink(SpeechDetected("speech_end"))
                if (turn := self._turn) is not None and turn.paused:  # a cough or click paused the answer
                    self._sink(NothingHeard(uuid.uuid4().hex[:12], "noise"))
                    if self._judging is None or self._judging.done():
                        turn.resume()

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
        judged: bool = False,
    ) -> None:
        """Start the next turn. For an utterance: `spoken` is when it was said (clock times),
        `started_at` the end of the user's speech, `decided_at` when its end was decided;
        `judged`: `text` is its transcript, and it was found meant over a paused answer."""
        if pcm is not None and not judged and self._turn is not None and self._turn.paused:
            # Spoken over the paused answer: its words decide whether it cuts (and it is transcribed once).
            args = {"pcm": pcm, "viewers": viewers, "spoken": spoken, "started_at": started_at,
                    "decided_at": decided_at, "decided": decided}  # fmt: skip
            self._judge(args)
            return
        self.drop_speculation()  # other input came first: the held answer is not this one
        previous = self._turn
        # An echo needs the character's audio playing while the user spoke (checked before a barge-in cuts it).
        echo_possible = spoken is not None and previous is not None and previous.played_during(*spoken)
        if not self._barge_in("new_input"):
            return
        turn = Turn(
            self._ctx, self._sink, text=text, pcm=pcm, previous=self._history_tail(), viewers=viewers,
            started_at=started_at, clock=self._clock, echo_possible=echo_possible,
        )  # fmt: skip
        if decided_at is not None:
            turn.marks["eot_decided"] = decided_at
        if decided:
            turn.extra.update(decided)
        self._turn = turn
        turn.start(asyncio.create_task(turn.run(), name=f"live-turn-{turn.id}"))

    # ------------------------------------------------------------ the backend's turn detection

    def backend_speech_started(self) -> None:
        """The backend heard the user start: as our VAD's speech, a barge-in of the running or playing answer."""
        self._user_speaking = True
        self._backend_speech = [self._clock(), None]
        self._sink(SpeechDetected("speech_start"))
        self._barge_in("speech")

    def backend_speech_stopped(self) -> None:
        if self._user_speaking:
            self._user_speaking = False
            self._sink(SpeechDetected("speech_end"))
        if self._backend_speech[1] is None:
            self._backend_speech[1] = self._clock()

    def begin_backend_turn(self) -> Turn | None:
        """The backend ended the utterance and answers it (its audio is there, not here): the next turn,
        or None when the busy policy refuses it."""
        self.backend_speech_stopped()
        now = self._clock()
        started, stopped = self._backend_speech
        self._backend_speech = [None, None]
        end = stopped if stopped is not None else now
        before = self._turn
        self._begin_turn(
            pcm=b"", spoken=(started if started is not None else end, end), started_at=end, decided_at=now,
            decided={"eot_mode": "backend"},
        )  # fmt: skip
        return self._turn if self._turn is not before else None

    def backend_error(self, code: ErrorCode, message: str) -> None:
        """The backend cannot hear the user now (e.g. its provider is unreachable)."""
        self._error(code, message)

    # ------------------------------------------------------------ speculation (TurnTaking's Speculator)

    def speculate(self, paused: SpeechPaused, heard: Callable[[str | None], None]) -> bool:
        """The utterance's first short pause: answer it ahead as a held turn (`end_of_turn_speculation`);
        its transcript goes to `heard` as soon as it is in.

        Only for the cascade, and only while no answer is running or playing: speech over an
        answer is for the barge-in rules to judge, and its history must settle first.
        """
        self.drop_speculation()
        previous = self._turn
        if (
            self._ctx.answerer.backend != "cascade"
            or (self._judging is not None and not self._judging.done())
            or (previous is not None and (previous.running or previous.paused or previous.unplayed_ms() > 0))
        ):
            return False
        now = self._clock()
        speech_end = now - paused.silence_ms / 1000
        spoken = (speech_end - (len(paused.pcm) / (2 * INPUT_SAMPLE_RATE) - paused.silence_ms / 1000), speech_end)
        turn = Turn(
            self._ctx, self._sink, pcm=paused.pcm, previous=self._history_tail(), started_at=speech_end,
            clock=self._clock, echo_possible=previous is not None and previous.played_during(*spoken), speculative=True,
        )  # fmt: skip
        turn.marks["speculation_start"] = now
        turn.on_transcript = heard
        self._speculation = turn
        turn.start(asyncio.create_task(turn.run(), name=f"live-speculation-{turn.id}"))
        return True

    def go_ahead(self) -> None:
        if self._speculation is not None:
            self._speculation.go_ahead()

    def drop_speculation(self) -> None:
        turn, self._speculation = self._speculation, None
        if turn is None:
            return
        turn.discard()
        self._speculations_dropped += 1
        self._dropped = turn  # the next turn waits until its exchange is out of history
        self._finalize(turn)

    def _commit_speculation(self, decided_at: float, decided: dict[str, object]) -> bool:
        """The utterance ended with a held answer of its last pause: it becomes the turn, output released."""
        turn, self._speculation = self._speculation, None
        if turn is None:
            return False
        if not self._barge_in("new_input"):
            turn.discard()
            self._finalize(turn)
            return True
        turn.marks["eot_decided"] = decided_at
        turn.extra.update(decided)
        self._turn = turn
        turn.commit()
        return True

    def _history_tail(self) -> Turn | None:
        """The turn whose history a new turn must wait for: the last one, or a speculation dropped after it."""
        tail, self._dropped = self._dropped, None
        return tail if tail is not None else self._turn

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
          speech is long enough; with `pause_play`, pauses the answer instead until
          the speech lasts `barge_in_meant_ms` (then cuts) or ends (`_judge` decides);
        - `new_input`: an utterance or text starts the next turn: cuts, except that the
          busy policy `reject` refuses the new input while a turn runs.

        Returns False only when the new input must not start a turn.
        """
        turn = self._turn
        if turn is None or (turn_id is not None and turn_id != turn.id):
            return True
        settings = self.settings
        if cause == "speech":
            if not (settings.barge_in_enabled and settings.busy_policy == "interrupt"):
                return True
            if self._pause_play and not self._backend_turns:  # (the model stops its answer at speech itself)
                if speech_ms is None or speech_ms < settings.barge_in_meant_ms:
                    turn.pause()  # the words decide, once the utterance ends (`_judge`)
                    return True
            elif speech_ms is not None and speech_ms < settings.barge_in_min_speech_ms:
                return True
        if cause == "new_input" and turn.running and settings.busy_policy == "reject":
            self._error(ErrorCode.PROCESSING_ERROR, "Session is busy", turn.id)
            return False
        if turn.interrupt(played_ms, heard_text, await_report=self._reports_playback):
            self._set_state("listening")
            self._finalize(turn)
        return True

    def _judge(self, args: dict) -> None:
        """Decide, from its words, whether an utterance spoken over the paused answer cuts it.

        Verdicts run one after another (a second utterance waits for the first's).
        """
        previous = self._judging
        self._judging = asyncio.create_task(self._verdict(previous, args), name=f"live-verdict-{self.id}")

    async def _verdict(self, previous: asyncio.Task | None, args: dict) -> None:
        if previous is not None:
            await wait_ended([previous], None)
        paused = self._turn
        if paused is None or not paused.paused:  # decided meanwhile: an ordinary next utterance
            self._begin_turn(**args, judged=True)
            return
        transcriber = await self._ctx.speech.transcriber(self.conversation)
        started = self._clock()
        text: str | None = None
        if transcriber is not None:
            try:
                async with asyncio.timeout(self.settings.stt_timeout_s):
                    text = (await transcriber.transcribe(pcm16_to_wav(args["pcm"], INPUT_SAMPLE_RATE))).strip()
            except asyncio.CancelledError:
                raise
            except Exception:
                text = None  # the turn transcribes again and reports the failure with its code
        if text is None:  # nothing to judge by: meant, as without pause_play
            self._begin_turn(**args, judged=True)
            return
        transcribed = self._clock()
        spoken = args["spoken"]
        echo = self._ctx.echo
        if echo is not None and spoken is not None and paused.played_during(*spoken) and echo.is_echo(text):
            reason = "echo"
        else:
            reason = verdict(text, self.settings.barge_in_min_words)
        if reason == "meant":
            self._begin_turn(**{**args, "text": text}, judged=True)
            turn = self._turn
            if turn is not None and turn is not paused:
                turn.marks["stt_done"] = transcribed
                turn.extra["stt_ms"] = round((transcribed - started) * 1000)
            return
        self._sink(NothingHeard(uuid.uuid4().hex[:12], reason))  # type: ignore[arg-type]
        if self._turn is paused and not self.hearing_user:  # speaking again: that utterance decides
            paused.resume()

    def _finalize(self, turn: Turn) -> None:
        finalizer = asyncio.create_task(turn.finalize(), name=f"live-finalize-{turn.id}")
        self._finalizers.add(finalizer)
        finalizer.add_done_callback(self._finalizers.discard)

    def _error(self, code: ErrorCode, message: str, turn_id: str | None = None) -> None:
        self._sink(ErrorRaised(code, message, turn_id))
