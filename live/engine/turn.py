"""One reply: utterance or text in, speech out, and the handle to cut it short.

The session creates a `Turn`, starts its task and routes commands to it;
everything about barge-in happens here. Its life is one `phase`:

    PENDING --> RUNNING --> DONE
                   |          |  (the client still plays its audio)
                   +----------+--> INTERRUPTED --> FINALIZED

- RUNNING: the task runs STT, the agent and the speech stage; its events go out.
- DONE: the task ended on its own; history holds the whole answer.
- INTERRUPTED: `interrupt()` stopped the agent, the task and the speech at once;
  nothing of the turn goes out any more but its `end`.
- FINALIZED: `finalize()` cut history to what the user heard (`heard`).

DONE and FINALIZED are settled: the next turn may reach the agent. Room is
left for a SPECULATIVE phase before RUNNING (output held until the user is
done) and a PAUSED one between RUNNING and INTERRUPTED (user speech while it
plays, not yet a cut); neither exists yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from ..audio.wav import pcm16_to_wav
from ..errors import ErrorCode
from ..log import logger
from .echo import EchoGuard
from .events import (
    AgentState,
    AgentTextDelta,
    BotReplied,
    ErrorRaised,
    Event,
    NothingHeard,
    PlaybackStopped,
    TurnEnded,
    TurnMetrics,
    UserTranscribed,
    ViewerEvent,
)
from .heard import heard_text as heard_of
from .ports import AGENT_ERROR, Agent, AgentDelta, AgentNotice, AgentRun, Conversation, Speech
from .segmenter import speakable
from .speech import OutputFormat, SpeechStage
from .tasks import cancel_and_wait, wait_ended

INPUT_SAMPLE_RATE = 16000
AGENT_CLOSE_TIMEOUT_S = 5.0
PLAYBACK_REPORT_WAIT_S = 0.4
ECHO_TAIL_S = 0.5
"""After its estimated end the answer may still be heard: the client's buffer, the room's reverb."""


class Phase(Enum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    INTERRUPTED = "interrupted"
    FINALIZED = "finalized"


_SETTLED = (Phase.DONE, Phase.FINALIZED)
_CUT = (Phase.INTERRUPTED, Phase.FINALIZED)


@dataclass(slots=True)
class TurnContext:
    """What every turn of a session shares."""

    conversation: Conversation
    agent: Agent
    speech: Speech
    output: OutputFormat
    fast_first_clause: bool
    tts_parallelism: int
    echo: EchoGuard | None
    set_state: Callable[[AgentState], None]  # the session's agent state (it tells clients of changes)
    stt_timeout_s: float = 30.0
    tts_timeout_s: float = 30.0
    agent_idle_timeout_s: float = 120.0


class Turn:
    def __init__(
        self,
        ctx: TurnContext,
        sink: Callable[[Event], None],
        *,
        text: str | None = None,
        pcm: bytes | None = None,
        previous: Turn | None = None,
        viewers: tuple[ViewerEvent, ...] = (),
        started_at: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        echo_possible: bool = False,
    ) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.ctx = ctx
        self._sink = sink
        self.text = text
        self.pcm = pcm
        self.previous = previous
        self.viewers = viewers  # the live-room viewers this turn answers
        self.echo_possible = echo_possible  # the previous answer played while this utterance was spoken
        self.clock = clock
        self.started_at = started_at if started_at is not None else clock()
        self.marks: dict[str, float] = {"speech_end" if pcm is not None else "text_in": self.started_at}
        self.extra: dict[str, object] = {"input": "voice" if pcm is not None else "text"}
        self.phase = Phase.PENDING
        self._settled = asyncio.Event()  # phase is DONE or FINALIZED
        self.task: asyncio.Task | None = None
        self.agent_run: AgentRun | None = None
        self.stage: SpeechStage | None = None
        self.reply_text = ""
        # barge-in
        self.cut_at: float | None = None
        self.played_ms: int | None = None  # the client's report of how much it played
        self.client_heard: str | None = None  # or the heard text itself, from a client that tracks it
        self.heard: str | None = None  # once cut: what history keeps of the answer
        self._end_owed = False  # the client still has to be told this cut turn's `end`
        self._report_arrived: asyncio.Future[None] | None = None  # while finalize() waits for a report

    def __repr__(self) -> str:
        return f"Turn({self.id}, {self.phase.value})"

    # ------------------------------------------------------------ phase

    @property
    def running(self) -> bool:
        return self.phase in (Phase.PENDING, Phase.RUNNING)

    @property
    def cut(self) -> bool:
        return self.phase in _CUT

    def _enter(self, phase: Phase) -> None:
        self.phase = phase
        if phase in _SETTLED:
            self._settled.set()
        else:
            self._settled.clear()

    def start(self, task: asyncio.Task) -> None:
        """The session created the task running `run()`; it owns it."""
        self.task = task
        self._enter(Phase.RUNNING)

    async def settled(self, timeout: float) -> None:
        """Wait (at most `timeout`) until history holds this turn's final answer."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._settled.wait(), timeout)

    # ------------------------------------------------------------ output

    def emit(self, event: Event) -> None:
        if not self.cut:
            self._sink(event)

    def _state(self, state: AgentState) -> None:
        if not self.cut:
            self.ctx.set_state(state)

    def mark(self, name: str) -> None:
        self.marks.setdefault(name, self.clock())

    # ------------------------------------------------------------ the turn

    async def run(self) -> None:
        """The task's body: answer; DONE when it ends on its own, silent when cut."""
        try:
            await self._answer()
        except asyncio.CancelledError:
            if self.phase is not Phase.INTERRUPTED:
                raise
        except Exception as exc:
            logger.error("live turn %s failed: %s", self.id, exc, exc_info=True)
            self.emit(ErrorRaised(ErrorCode.AGENT_FAILED, f"the turn failed: {exc}", self.id))
            self.emit(TurnEnded(self.id, interrupted=False, text=self.reply_text))
            self._state("listening")
        finally:
            if self.phase is Phase.RUNNING:
                self._enter(Phase.DONE)

    async def _answer(self) -> None:
        text = self.text if self.pcm is None else await self._transcribe()
        if not text:
            return
        self.emit(UserTranscribed(self.id, text, int(time.time() * 1000), self.viewers))
        self._state("thinking")  # voice turns said so when STT started
        if self.previous is not None:
            await self.previous.settled(AGENT_CLOSE_TIMEOUT_S + 1)  # the next question sees the cut answer
            self.previous = None  # let the old turn be collected
        synthesizer = await self.ctx.speech.synthesizer(self.ctx.conversation)
        stage = self.stage = SpeechStage(
            turn_id=self.id,
            synthesizer=synthesizer,
            emit=self._emit_from_stage,
            output=self.ctx.output,
            fast_first_clause=self.ctx.fast_first_clause,
            parallelism=self.ctx.tts_parallelism,
            sentence_timeout_s=self.ctx.tts_timeout_s,
            mark=self.mark,
            on_voiced=self.ctx.echo.remember if self.ctx.echo else lambda _t: None,
        )
        delivery = asyncio.create_task(stage.deliver(), name=f"live-deliver-{self.id}")
        try:
            self.mark("agent_start")
            self.agent_run = self.ctx.agent.start(self.ctx.conversation, text)
            timed_out = await self._stream_agent(stage)
            stage.end_input()
            await delivery
        finally:
            await cancel_and_wait([delivery])
            await stage.aclose()
        if not stage.produced_audio:
            self.emit(BotReplied(self.id, self.reply_text, int(time.time() * 1000)))
        self.mark("turn_end")
        self.emit(TurnEnded(self.id, interrupted=False, text=self.reply_text))
        self.emit(self.metrics())
        self._state("listening")
        if timed_out:  # the answer was cut short: history keeps what was said (the next turn waits for this)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.agent_run.closed(), AGENT_CLOSE_TIMEOUT_S)
            await self.agent_run.keep_heard(self.reply_text)

    async def _stream_agent(self, stage: SpeechStage) -> bool:
        """Feed the agent's text to the stage; True when the agent went quiet for too long."""
        assert self.agent_run is not None
        idle = self.ctx.agent_idle_timeout_s
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(idle) as deadline:
                async for output in self.agent_run.outputs():
                    deadline.reschedule(loop.time() + idle)
                    if isinstance(output, AgentDelta) and output.text:
                        self.mark("llm_first_token")
                        self.reply_text += output.text
                        self.emit(AgentTextDelta(self.id, output.text))
                        stage.push(output.text)
                    elif isinstance(output, AgentNotice) and output.kind == AGENT_ERROR:
                        # the host reports a failed agent (an LLM error mid-stream) as text: a code, not speech
                        self.emit(ErrorRaised(ErrorCode.AGENT_FAILED, f"the agent failed: {output.text}", self.id))
        except TimeoutError:
            self.agent_run.stop()
            self.emit(ErrorRaised(ErrorCode.AGENT_FAILED, f"the agent gave no output for {idle:.0f} s", self.id))
            return True
        return False

    async def _transcribe(self) -> str | None:
        assert self.pcm is not None
        transcriber = await self.ctx.speech.transcriber(self.ctx.conversation)
        if transcriber is None:
            self.emit(
                ErrorRaised(
                    ErrorCode.STT_NOT_CONFIGURED,
                    "No speech-to-text provider is configured: pick one in the Live Mode "
                    "plugin settings or enable one in AstrBot's provider settings.",
                    self.id,
                )
            )
            return None
        self._state("thinking")
        started = self.clock()
        try:
            async with asyncio.timeout(self.ctx.stt_timeout_s):
                text = (await transcriber.transcribe(pcm16_to_wav(self.pcm, INPUT_SAMPLE_RATE))).strip()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            reason = f"timed out after {self.ctx.stt_timeout_s:.0f} s" if isinstance(exc, TimeoutError) else exc
            self.emit(ErrorRaised(ErrorCode.STT_FAILED, f"speech recognition failed: {reason}", self.id))
            self._state("listening")
            return None
        self.mark("stt_done")
        self.extra["stt_ms"] = round((self.clock() - started) * 1000)
        reason = None
        if not text:
            reason = "empty_transcript"
        elif self.echo_possible and self.ctx.echo is not None and self.ctx.echo.is_echo(text):
            reason = "echo"
        if reason:
            self.emit(NothingHeard(self.id, reason))  # type: ignore[arg-type]
            self._state("listening")
            return None
        return text

    def _emit_from_stage(self, event: Event) -> None:
        if getattr(event, "duration_ms", 0):
            self._state("speaking")
        self.emit(event)

    # ------------------------------------------------------------ barge-in

    def estimated_played_ms(self, at: float | None = None) -> int:
        """What the client has played by `at` (now), if it plays in real time from the first audio."""
        first_audio = self.marks.get("first_audio")
        if self.stage is None or first_audio is None:
            return 0
        elapsed = ((self.clock() if at is None else at) - first_audio) * 1000
        return int(max(0, min(elapsed, self.stage.audio_ms)))

    def played_during(self, start: float, end: float) -> bool:
        """Whether this answer's audio could be heard between clock times `start` and `end`.

        It plays from its first audio for as long as the client reported, or as estimated
        (real time), until it was cut; a running answer may go on playing.
        """
        first_audio = self.marks.get("first_audio")
        if first_audio is None or self.stage is None:
            return False
        if self.cut_at is not None:
            played = self.played_ms if self.played_ms is not None else self.estimated_played_ms(self.cut_at)
            until = min(first_audio + played / 1000, self.cut_at)
        else:
            until = first_audio + self.stage.audio_ms / 1000
            if self.running:
                until = max(until, self.clock())
        return start < until + ECHO_TAIL_S and end > first_audio

    def unplayed_ms(self) -> int:
        """Audio of this answer the client should still be playing (an estimate; 0 once cut)."""
        if self.cut or self.stage is None:
            return 0
        return max(0, self.stage.audio_ms - self.estimated_played_ms())

    def report(self, played_ms: int | None = None, heard_text: str | None = None) -> None:
        """The client says how much of the answer it played, or what text it heard."""
        if played_ms is not None:
            self.played_ms = max(0, int(played_ms))
        if heard_text is not None:
            self.client_heard = heard_text
        waiter = self._report_arrived
        if waiter is not None and not waiter.done() and (played_ms is not None or heard_text is not None):
            waiter.set_result(None)

    def interrupt(
        self,
        played_ms: int | None = None,
        heard_text: str | None = None,
        *,
        tell_client: bool = True,
        await_report: bool = False,
    ) -> bool:
        """Cut the reply now: stop the agent, cancel the task and the speech, silence the turn.

        Synchronous and idempotent. Returns whether anything was cut: not when the
        turn was already cut, nor when it ended and the client played all of it.
        `tell_client`: `stop_play` now, and `end` (with the heard text) once that is
        known; at once unless `await_report` waits for the client's playback report.
        """
        self.report(played_ms, heard_text)
        if self.cut or (self.phase is Phase.DONE and self._played_all(played_ms)):
            return False
        self._enter(Phase.INTERRUPTED)
        self.cut_at = self.clock()
        if self.agent_run is not None:
            self.agent_run.stop()
        if self.stage is not None:
            self.stage.stop()
        if self.task is not None:
            self.task.cancel()
        if tell_client:
            self._sink(PlaybackStopped(self.id))
        # A DONE turn told its `end` already; this one says the answer was cut, and what was heard.
        self._end_owed = tell_client
        reported = self.played_ms is not None or self.client_heard is not None
        if reported or not (tell_client and await_report):
            self._settle_heard()
        return True

    async def finalize(self) -> None:
        """After `interrupt()`: keep only the heard answer in history. Every wait is bounded."""
        try:
            await wait_ended([self.task])
            if self.stage is not None:
                await self.stage.aclose()
            if self.heard is None:
                self._report_arrived = asyncio.get_running_loop().create_future()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._report_arrived, PLAYBACK_REPORT_WAIT_S)
                self._report_arrived = None
                self._settle_heard()
            if self.agent_run is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.agent_run.closed(), AGENT_CLOSE_TIMEOUT_S)
                await self.agent_run.keep_heard(self.heard or "")
        finally:
            self._settle_heard()  # the client gets its `end` even if keeping history failed
            self._enter(Phase.FINALIZED)

    def _played_all(self, played_ms: int | None) -> bool:
        if self.stage is None:
            return True
        played = played_ms if played_ms is not None else self.estimated_played_ms()
        return played >= self.stage.audio_ms

    def _settle_heard(self) -> None:
        """Fix the heard text (once) and tell the client the cut turn's `end`."""
        if self.heard is not None:
            return
        if self.client_heard is not None:
            heard = self.client_heard.strip()
            self.heard = heard if speakable(heard) else ""  # tags or markup alone were never heard
        else:
            played = self.played_ms if self.played_ms is not None else self.estimated_played_ms(self.cut_at)
            self.extra["heard_ms"] = played
            self.heard = heard_of(self.stage.spoken, played) if self.stage is not None else ""
        if self._end_owed:
            self._end_owed = False
            self._sink(TurnEnded(self.id, interrupted=True, text="", heard=self.heard))

    # ------------------------------------------------------------ metrics

    def metrics(self) -> TurnMetrics:
        origin = self.started_at
        timeline = {name: round((at - origin) * 1000) for name, at in self.marks.items()}
        extra = dict(self.extra)
        if "first_sentence" in self.marks and "agent_start" in self.marks:
            extra["llm_to_first_sentence_ms"] = round(
                (self.marks["first_sentence"] - self.marks["agent_start"]) * 1000
            )
        if "llm_first_token" in self.marks and "agent_start" in self.marks:
            extra["llm_ttft_ms"] = round((self.marks["llm_first_token"] - self.marks["agent_start"]) * 1000)
        return TurnMetrics(self.id, timeline, extra)
