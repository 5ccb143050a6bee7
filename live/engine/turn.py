"""One reply: utterance or text in, speech out, and the handle to cut it short.

The session creates a `Turn`, starts its task and routes commands to it;
everything about barge-in happens here. Its life is one `phase`:

    PENDING --> RUNNING --> DONE
                   |  ^       |  ^ (the client still plays its audio)
                   v  |       v  |
                   PAUSED <---+--+
                   |          |
                   +----------+--> INTERRUPTED --> FINALIZED

- RUNNING: the task runs the session's `Answerer` (the cascade: STT, the agent
  and the speech stage; or a realtime model); its events go out.
- DONE: the task ended on its own; history holds the whole answer.
- PAUSED (clients with `pause_play`): the user speaks over the answer; its
  playback holds while the session decides whether the speech is meant
  (`pause()`); the task goes on and its output still goes out (the client
  queues it); the played-time estimate stops. `resume()` returns to RUNNING
  (or DONE, if the task ended meanwhile); a meant interruption cuts.
- INTERRUPTED: `interrupt()` stopped the agent, the task and the speech at once;
  nothing of the turn goes out any more but its `end`.
- FINALIZED: `finalize()` cut history to what the user heard (`heard`).

DONE and FINALIZED are settled: the next turn may reach the agent.

A speculative turn (`speculative=True`, the end-of-turn speculation) starts in
SPECULATIVE before the user is surely done: it transcribes at once, reaches the
agent only after `go_ahead()`, and holds every output (events, agent state).
`commit()` releases what it held, in order, and it runs on as RUNNING; `discard()`
(the user went on) cuts it silently, and `finalize()` then removes its exchange
from history (`AgentRun.discard`), after the turn before it settled.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from ..errors import ErrorCode
from ..log import logger
from .echo import EchoGuard
from .events import (
    AgentState,
    ErrorRaised,
    Event,
    PlaybackPaused,
    PlaybackResumed,
    PlaybackStopped,
    TurnEnded,
    TurnMetrics,
    ViewerEvent,
)
from .heard import SpokenSentence
from .heard import heard_text as heard_of
from .ports import Agent, AgentRun, Conversation, Speech
from .segmenter import speakable
from .speech import OutputFormat
from .tasks import wait_ended

INPUT_SAMPLE_RATE = 16000
AGENT_CLOSE_TIMEOUT_S = 5.0
PLAYBACK_REPORT_WAIT_S = 0.4
ECHO_TAIL_S = 0.5
"""After its estimated end the answer may still be heard: the client's buffer, the room's reverb."""


class Playback(Protocol):
    """What plays an answer to the client, as far as a cut needs to know (`SpeechStage` for the cascade)."""

    audio_ms: int  # audio sent so far
    spoken: list[SpokenSentence]  # what the voice said, with the audio time of each sentence

    @property
    def produced_audio(self) -> bool: ...

    def stop(self) -> None:
        """Send nothing more (synchronous, idempotent)."""
        ...

    async def aclose(self) -> None: ...


class Answerer(Protocol):
    backend: str  # "cascade" or "realtime", as the session's `hello` tells it

    async def answer(self, turn: Turn) -> None:
        """Produce the turn's reply and tell it to the client (`turn.emit`), up to its `end` and metrics.

        Set `turn.agent_run` (what writes history) and `turn.stage` (what plays) as soon as
        they exist, so that `Turn.interrupt()` can cut them at any moment.
        """
        ...

    async def aclose(self) -> None:
        """The session is over (its cut turns are finalized): end whatever the backend keeps open."""
        ...


class Phase(Enum):
    PENDING = "pending"
    SPECULATIVE = "speculative"
    RUNNING = "running"
    PAUSED = "paused"
    DONE = "done"
    INTERRUPTED = "interrupted"
    FINALIZED = "finalized"


_SETTLED = (Phase.DONE, Phase.FINALIZED)
_CUT = (Phase.INTERRUPTED, Phase.FINALIZED)
_RELEASED_MARKS = ("first_audio",)
"""Marks of what the client receives: a speculative turn's are moved to its commit, when it got them."""


@dataclass(frozen=True, slots=True)
class _HeldState:
    """An agent state change a speculative turn held, released in order with its events."""

    state: AgentState


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
    answerer: Answerer  # the backend that produces each reply
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
        speculative: bool = False,
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
        self.stage: Playback | None = None
        self.reply_text = ""
        # barge-in
        self.cut_at: float | None = None
        self.played_ms: int | None = None  # the client's report of how much it played
        self.client_heard: str | None = None  # or the heard text itself, from a client that tracks it
        self.heard: str | None = None  # once cut: what history keeps of the answer
        self._end_owed = False  # the client still has to be told this cut turn's `end`
        self._report_arrived: asyncio.Future[None] | None = None  # while finalize() waits for a report
        # pauses: (start, end) clock times, end None while paused; the phase a resume returns to
        self._pauses: list[tuple[float, float | None]] = []
        self._paused_from = Phase.RUNNING
        # speculation: output held until commit(); the agent waits for go_ahead()
        self._held: list[Event | _HeldState] | None = [] if speculative else None
        self._go_ahead = asyncio.Event()
        if not speculative:
            self._go_ahead.set()
        self.discarded = False  # a speculation the user talked through: history keeps nothing of it
        # a speculation's words, for the end-of-turn decision (None: the transcription failed)
        self.on_transcript: Callable[[str | None], None] | None = None

    def __repr__(self) -> str:
        return f"Turn({self.id}, {self.phase.value})"

    # ------------------------------------------------------------ phase

    @property
    def running(self) -> bool:
        """The answer is still being produced (also while its playback is paused)."""
        return self.phase in (Phase.PENDING, Phase.RUNNING) or (
            self.phase is Phase.PAUSED and self._paused_from is Phase.RUNNING
        )

    @property
    def paused(self) -> bool:
        return self.phase is Phase.PAUSED

    @property
    def cut(self) -> bool:
        return self.phase in _CUT

    def _enter(self, phase: Phase) -> None:
        self.phase = phase
        if phase in _SETTLED:
            self._settled.set()
        else:
            self._settled.clear()

    @property
    def speculative(self) -> bool:
        """Started before the user was surely done, and not committed yet: all output is held."""
        return self._held is not None

    def start(self, task: asyncio.Task) -> None:
        """The session created the task running `run()`; it owns it."""
        self.task = task
        self._enter(Phase.SPECULATIVE if self.speculative else Phase.RUNNING)

    async def settled(self, timeout: float) -> None:
        """Wait (at most `timeout`) until history holds this turn's final answer."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._settled.wait(), timeout)

    # ------------------------------------------------------------ output

    def emit(self, event: Event) -> None:
        if self._held is not None:
            self._held.append(event)
        elif not self.cut:
            self._sink(event)

    def set_state(self, state: AgentState) -> None:
        if self._held is not None:
            self._held.append(_HeldState(state))
        elif not self.cut:
            self.ctx.set_state(state)

    def mark(self, name: str) -> None:
        self.marks.setdefault(name, self.clock())

    # ------------------------------------------------------------ the turn

    async def run(self) -> None:
        """The task's body: answer; DONE when it ends on its own, silent when cut."""
        try:
            await self.ctx.answerer.answer(self)
        except asyncio.CancelledError:
            if self.phase is not Phase.INTERRUPTED:
                raise
        except Exception as exc:
            logger.error("live turn %s failed: %s", self.id, exc, exc_info=True)
            self.emit(ErrorRaised(ErrorCode.AGENT_FAILED, f"the turn failed: {exc}", self.id))
            self.emit(TurnEnded(self.id, interrupted=False, text=self.reply_text))
            self.set_state("listening")
        finally:
            if self.phase is Phase.RUNNING:
                self._enter(Phase.DONE)
            elif self.phase is Phase.PAUSED:
                self._paused_from = Phase.DONE  # still paused until the session decides

    def emit_playback(self, event: Event) -> None:
        """Output of the playback stage: its first audio makes the agent `speaking`."""
        if getattr(event, "duration_ms", 0):
            self.set_state("speaking")
        self.emit(event)

    async def wait_previous_settled(self) -> None:
        """Before the agent sees this turn: a speculative turn has its go-ahead, and history holds the
        previous answer as heard (bounded)."""
        await self._go_ahead.wait()
        if self.previous is not None:
            await self.previous.settled(AGENT_CLOSE_TIMEOUT_S + 1)
            self.previous = None  # let the old turn be collected

    # ------------------------------------------------------------ speculation

    def go_ahead(self) -> None:
        """The user is probably done: the speculative answer may reach the agent (its output still held)."""
        if self.speculative and not self._go_ahead.is_set():
            self._go_ahead.set()
            self.mark("speculation_go")

    def commit(self) -> None:
        """The user is done: release the held output in order, at once; the turn runs on as any other."""
        held = self._held
        if held is None or self.cut:
            return
        self._go_ahead.set()
        self._held = None
        now = self.clock()
        self.extra["speculation"] = "answer" if "agent_start" in self.marks else "transcript"
        self.extra["speculation_saved_ms"] = self._ahead_ms(now)
        for name in _RELEASED_MARKS:
            if name in self.marks:
                self.marks[name] = max(self.marks[name], now)
        done = self.task is not None and self.task.done()
        self._enter(Phase.DONE if done else Phase.RUNNING)
        if self.agent_run is not None:
            self.agent_run.commit()
        for item in held:
            if isinstance(item, _HeldState):
                self.ctx.set_state(item.state)
            else:
                self._sink(self.metrics() if isinstance(item, TurnMetrics) else item)

    def discard(self) -> None:
        """The user went on: stop the speculative answer; nothing of it was told, and `finalize()` leaves
        nothing of it in history. Synchronous and idempotent."""
        if self._held is None or self.cut:
            return
        self._held = None
        self.discarded = True
        self.heard = ""  # nothing was heard, nothing is owed to the client
        self._go_ahead.set()  # a task waiting for it is cancelled anyway
        self._enter(Phase.INTERRUPTED)
        self.cut_at = self.clock()
        if self.agent_run is not None:
            self.agent_run.stop()
        if self.stage is not None:
            self.stage.stop()
        if self.task is not None:
            self.task.cancel()

    def _ahead_ms(self, now: float) -> int:
        """Work done before the commit on the way to the first audio: the transcription, then the agent
        from its start until the commit (or until its first audio was ready, if sooner)."""
        begun = self.marks.get("speculation_start")
        if begun is None:
            return 0
        ahead = min(self.marks.get("stt_done", now), now) - begun
        agent = self.marks.get("agent_start")
        if agent is not None and agent < now:
            ahead += min(self.marks.get("first_audio", now), now) - agent
        return max(0, round(ahead * 1000))

    # ------------------------------------------------------------ barge-in

    def pause(self) -> bool:
        """The user speaks over the answer: the client holds its playback (`pause_play`).

        The task goes on and its output still goes out; the played-time estimate stops
        until `resume()`. Returns whether it paused: not when cut, already paused, or
        ended with all of its audio played.
        """
        if self.phase not in (Phase.RUNNING, Phase.DONE) or (self.phase is Phase.DONE and self._played_all(None)):
            return False
        self._paused_from = self.phase
        self._enter(Phase.PAUSED)
        self._pauses.append((self.clock(), None))
        self._sink(PlaybackPaused(self.id))
        return True

    def resume(self) -> bool:
        """The speech was not meant as an interruption: play on where it paused (`resume_play`)."""
        if self.phase is not Phase.PAUSED:
            return False
        self._pauses[-1] = (self._pauses[-1][0], self.clock())
        self._enter(self._paused_from)
        self._sink(PlaybackResumed(self.id))
        return True

    def _playing_s(self, at: float) -> float:
        """Seconds the client spent playing between the first audio and `at`: real time, pauses left out."""
        first_audio = self.marks.get("first_audio")
        if first_audio is None or at <= first_audio:
            return 0.0
        paused = sum(
            max(0.0, min(at if end is None else end, at) - max(start, first_audio)) for start, end in self._pauses
        )
        return at - first_audio - paused

    def _playing_spans(self, first_audio: float, stop: float):
        """The clock intervals from the first audio to `stop` in which playback was not paused."""
        at = first_audio
        for start, end in self._pauses:
            if end is not None and end <= at:
                continue
            if start > at:
                yield at, min(start, stop)
            if end is None or end >= stop:
                return
            at = max(at, end)
        if at < stop:
            yield at, stop

    def estimated_played_ms(self, at: float | None = None) -> int:
        """What the client has played by `at` (now), if it plays in real time from the first audio
        and holds while paused."""
        if self.stage is None:
            return 0
        elapsed = self._playing_s(self.clock() if at is None else at) * 1000
        return round(max(0, min(elapsed, self.stage.audio_ms)))

    def played_during(self, start: float, end: float) -> bool:
        """Whether this answer's audio could be heard between clock times `start` and `end`.

        It plays from its first audio, except while paused, for as long as the client
        reported, or as estimated (real time), until it was cut; a running answer may go
        on playing. Each stretch of playing may still be heard `ECHO_TAIL_S` after it.
        """
        first_audio = self.marks.get("first_audio")
        if first_audio is None or self.stage is None:
            return False
        if self.cut_at is not None:
            played = self.played_ms if self.played_ms is not None else self.estimated_played_ms(self.cut_at)
            left, stop = played / 1000, self.cut_at
        else:
            left, stop = (math.inf if self.running else self.stage.audio_ms / 1000), math.inf
        for span_start, span_end in self._playing_spans(first_audio, stop):
            if span_end - span_start >= left:
                return start < span_start + left + ECHO_TAIL_S and end > span_start
            if start < span_end + ECHO_TAIL_S and end > span_start:
                return True
            left -= span_end - span_start
        return False

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
            if self.discarded:
                await self.wait_previous_settled()  # history is edited in turn order
                if self.agent_run is not None:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.agent_run.closed(), AGENT_CLOSE_TIMEOUT_S)
                    await self.agent_run.discard()
                return
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
