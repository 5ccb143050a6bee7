"""One turn: utterance or text in, speech out, as one cancellable task.

The session creates a `Turn` and owns its task. Cancelling the task (barge-in)
stops STT, the agent and TTS; `finalize()` then keeps only the heard part of
the answer in history.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from ..audio.wav import pcm16_to_wav
from ..errors import ErrorCode
from .echo import EchoGuard
from .events import (
    AgentTextDelta,
    BotReplied,
    ErrorRaised,
    Event,
    NothingHeard,
    StateChanged,
    TurnEnded,
    TurnMetrics,
    UserTranscribed,
    ViewerEvent,
)
from .heard import heard_text
from .ports import Agent, AgentDelta, AgentNotice, AgentRun, Conversation, Speech
from .speech import OutputFormat, SpeechStage

INPUT_SAMPLE_RATE = 16000
AGENT_ERROR = "error"  # the `AgentNotice.kind` of an agent that failed: a code for the client, never speech
AGENT_CLOSE_TIMEOUT_S = 5.0
PLAYBACK_REPORT_WAIT_S = 0.4


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
    ) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.ctx = ctx
        self._sink = sink
        self.text = text
        self.pcm = pcm
        self.previous = previous
        self.viewers = viewers  # the live-room viewers this turn answers
        self.clock = clock
        self.started_at = started_at if started_at is not None else clock()
        self.marks: dict[str, float] = {"speech_end" if pcm is not None else "text_in": self.started_at}
        self.extra: dict[str, object] = {"input": "voice" if pcm is not None else "text"}
        self.interrupted = False
        self.silenced = False  # after stop_play nothing of this turn goes out
        self.finalized = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.agent_run: AgentRun | None = None
        self.stage: SpeechStage | None = None
        self.first_audio_sent_at: float | None = None
        self.played_ms: int | None = None
        self.played_reported = asyncio.Event()
        self.heard_override: str | None = None  # a client that tracks the heard text itself
        self._speaking = False
        self.reply_text = ""

    def __repr__(self) -> str:
        return f"Turn({self.id}, interrupted={self.interrupted})"

    @property
    def done(self) -> bool:
        return self.task is None or self.task.done()

    def emit(self, event: Event) -> None:
        if not self.silenced:
            self._sink(event)

    def mark(self, name: str) -> None:
        self.marks.setdefault(name, self.clock())
        if name == "first_audio" and self.first_audio_sent_at is None:
            self.first_audio_sent_at = self.marks[name]

    def report_played(self, played_ms: int) -> None:
        self.played_ms = max(0, int(played_ms))
        self.played_reported.set()

    # ------------------------------------------------------------ the turn

    async def run(self) -> None:
        text = self.text if self.pcm is None else await self._transcribe()
        if not text:
            return
        self.emit(UserTranscribed(self.id, text, int(time.time() * 1000), self.viewers))
        if self.pcm is None:
            self.emit(StateChanged("thinking"))  # voice turns said so when STT started
        if self.previous is not None:
            await self._wait_for_previous()
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
            idle = self.ctx.agent_idle_timeout_s
            timed_out = False
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
                timed_out = True
                self.agent_run.stop()
                self.emit(ErrorRaised(ErrorCode.AGENT_FAILED, f"the agent gave no output for {idle:.0f} s", self.id))
            stage.end_input()
            await delivery
        finally:
            if not delivery.done():
                delivery.cancel()
                await asyncio.gather(delivery, return_exceptions=True)
            await stage.aclose()
        if not stage.produced_audio:
            self.emit(BotReplied(self.id, self.reply_text, int(time.time() * 1000)))
        self.mark("turn_end")
        self.emit(TurnEnded(self.id, interrupted=False, text=self.reply_text))
        self.emit(self.metrics())
        self.emit(StateChanged("listening"))
        if timed_out:  # the answer was cut short: history keeps what was said (the next turn waits for this)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.agent_run.closed(), AGENT_CLOSE_TIMEOUT_S)
            await self.agent_run.keep_heard(self.reply_text)

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
        self.emit(StateChanged("thinking"))
        started = self.clock()
        try:
            async with asyncio.timeout(self.ctx.stt_timeout_s):
                text = (await transcriber.transcribe(pcm16_to_wav(self.pcm, INPUT_SAMPLE_RATE))).strip()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            reason = f"timed out after {self.ctx.stt_timeout_s:.0f} s" if isinstance(exc, TimeoutError) else exc
            self.emit(ErrorRaised(ErrorCode.STT_FAILED, f"speech recognition failed: {reason}", self.id))
            self.emit(StateChanged("listening"))
            return None
        self.mark("stt_done")
        self.extra["stt_ms"] = round((self.clock() - started) * 1000)
        reason = None
        if not text:
            reason = "empty_transcript"
        elif self.ctx.echo is not None and self.ctx.echo.is_echo(text):
            reason = "echo"
        if reason:
            self.emit(NothingHeard(self.id, reason))  # type: ignore[arg-type]
            self.emit(StateChanged("listening"))
            return None
        return text

    async def _wait_for_previous(self) -> None:
        """The next question must see the previous answer already cut to what was heard."""
        assert self.previous is not None
        try:
            await asyncio.wait_for(self.previous.finalized.wait(), AGENT_CLOSE_TIMEOUT_S + 1)
        except TimeoutError:
            pass
        self.previous = None  # let the old turn be collected

    def _emit_from_stage(self, event: Event) -> None:
        if isinstance(event, ErrorRaised):
            self.emit(event)
            return
        if not self._speaking and getattr(event, "duration_ms", 0):
            self._speaking = True
            self.emit(StateChanged("speaking"))
        self.emit(event)

    # ------------------------------------------------------------ barge-in

    def estimated_played_ms(self) -> int:
        """What the client has played by now, if it plays in real time from the first audio."""
        if self.stage is None or self.first_audio_sent_at is None:
            return 0
        elapsed = (self.clock() - self.first_audio_sent_at) * 1000
        return int(min(elapsed, self.stage.audio_ms))

    async def finalize(self, wait_for_report: bool) -> None:
        """After an interrupt: stop the agent, then keep only the heard answer in history."""
        try:
            if self.task is not None:
                await asyncio.gather(self.task, return_exceptions=True)
            if self.stage is not None:
                await self.stage.aclose()
            if self.agent_run is None:
                return
            estimate = self.estimated_played_ms()
            if wait_for_report and self.played_ms is None and self.heard_override is None:
                try:
                    await asyncio.wait_for(self.played_reported.wait(), PLAYBACK_REPORT_WAIT_S)
                except TimeoutError:
                    pass
            played = self.played_ms if self.played_ms is not None else estimate
            heard = heard_text(self.stage.spoken, played) if self.stage else ""
            if self.heard_override is not None:
                heard = self.heard_override.strip()
            self.extra["heard_ms"] = played
            try:
                await asyncio.wait_for(self.agent_run.closed(), AGENT_CLOSE_TIMEOUT_S)
            except TimeoutError:
                pass
            await self.agent_run.keep_heard(heard)
        finally:
            self.finalized.set()

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
