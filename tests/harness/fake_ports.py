"""The engine's ports (live/engine/ports.py) on fakes the test drives, for engine unit tests.

No AstrBot: a transcriber, an agent and a synthesizer whose every step waits
for the test (a gate), on a clock the test moves. The synthesizer voices
10 ms of audio per character, so audio durations are known exactly.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest_asyncio

from live.config import LiveSettings
from live.engine.events import Event, StateChanged
from live.engine.ports import AGENT_ERROR, AgentDelta, AgentNotice, AgentOutput, AudioClip, Conversation
from live.engine.session import LiveSession
from live.engine.speech import OutputFormat

RATE = 16000
MS_PER_CHAR = 10
_END = object()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, ms: float) -> None:
        self.now += ms / 1000


class FakeTranscriber:
    def __init__(self, text: str = "hello there") -> None:
        self.text = text
        self.gate: asyncio.Event | None = None  # set: transcribe waits until the test opens it
        self.calls = 0

    async def transcribe(self, wav: bytes) -> str:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        return self.text


class FakeSynthesizer:
    def __init__(self) -> None:
        self.spoken: list[str] = []
        self.gate: asyncio.Event | None = None  # set: every sentence waits until the test opens it
        self.cancelled = 0

    async def stream(self, text: str) -> AsyncIterator[AudioClip]:
        try:
            if self.gate is not None:
                await self.gate.wait()
            self.spoken.append(text)
            yield AudioClip(bytes(2 * RATE * MS_PER_CHAR * len(text) // 1000), RATE)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


@dataclass
class FakeRun:
    text: str
    outputs_queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    stopped: bool = False
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    kept: list[str] = field(default_factory=list)  # what keep_heard was told, in order
    close_hangs: bool = False  # the host never ends the request
    speculative: bool = False  # started ahead of the end of turn: uncommitted until `commit()`
    committed: bool = False
    discarded: bool = False  # its exchange was removed from history

    def say(self, *deltas: str) -> None:
        for delta in deltas:
            self.outputs_queue.put_nowait(AgentDelta(delta))

    def fail(self, message: str) -> None:
        self.outputs_queue.put_nowait(AgentNotice(AGENT_ERROR, message))

    def end(self) -> None:
        self.outputs_queue.put_nowait(_END)

    async def outputs(self) -> AsyncIterator[AgentOutput]:
        try:
            while (item := await self.outputs_queue.get()) is not _END:
                yield item
        finally:
            if not self.close_hangs:
                self.finished.set()

    def stop(self) -> None:
        self.stopped = True
        self.end()

    async def closed(self) -> None:
        await self.finished.wait()

    async def keep_heard(self, heard: str) -> None:
        self.kept.append(heard)

    def commit(self) -> None:
        self.committed = True

    async def discard(self) -> None:
        self.discarded = True


class FakeAgent:
    def __init__(self) -> None:
        self.runs: list[FakeRun] = []
        self.script: list[tuple[str, ...]] = []  # replies said at once, then ended, one per turn

    def start(self, conversation: Conversation, text: str, *, speculative: bool = False) -> FakeRun:
        run = FakeRun(text, speculative=speculative)
        self.runs.append(run)
        if self.script:
            run.say(*self.script.pop(0))
            run.end()
        return run

    async def started(self, count: int = 1) -> FakeRun:
        await until(lambda: len(self.runs) >= count)
        return self.runs[count - 1]


class FakeSpeech:
    def __init__(self, transcriber: FakeTranscriber | None, synthesizer: FakeSynthesizer | None) -> None:
        self._transcriber = transcriber
        self._synthesizer = synthesizer

    async def transcriber(self, conversation: Conversation) -> FakeTranscriber | None:
        return self._transcriber

    async def synthesizer(self, conversation: Conversation) -> FakeSynthesizer | None:
        return self._synthesizer


class Harness:
    """One session on fakes, with every event it emitted."""

    def __init__(self, settings: LiveSettings | None = None, *, stt: bool = True, tts: bool = True, **session) -> None:
        self.clock = FakeClock()
        self.events: list[Event] = []
        self.transcriber = FakeTranscriber() if stt else None
        self.synthesizer = FakeSynthesizer() if tts else None
        self.agent = FakeAgent()
        self.session = LiveSession(
            session_id="s1",
            conversation=Conversation("alice", "c1"),
            settings=settings or LiveSettings(),
            agent=self.agent,
            speech=FakeSpeech(self.transcriber, self.synthesizer),
            sink=self.events.append,
            output=OutputFormat("wav", 0),
            clock=self.clock,
            **session,
        )
        self.session.open()

    def of(self, kind: type, turn: str | None = None) -> list:
        return [e for e in self.events if isinstance(e, kind) and (turn is None or getattr(e, "turn_id", None) == turn)]

    def states(self) -> list[str]:
        return [e.state for e in self.of(StateChanged)]

    async def until(self, kind: type, count: int = 1, timeout: float = 5.0) -> list:
        await until(lambda: len(self.of(kind)) >= count, timeout)
        return self.of(kind)


@pytest_asyncio.fixture
async def harness():
    """Makes `Harness`es and closes their sessions after the test, so no turn outlives it."""
    made: list[Harness] = []

    def make(*args, **kwargs) -> Harness:
        made.append(Harness(*args, **kwargs))
        return made[-1]

    yield make
    for h in made:
        await h.session.close()


async def until(condition, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting for a condition")
        await asyncio.sleep(0.002)
