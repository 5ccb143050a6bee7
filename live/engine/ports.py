"""What the engine needs from the outside world, as small protocols.

`live/host/` implements these on top of AstrBot; tests can implement them on
anything. The engine imports nothing else from outside `live/`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Conversation:
    """Whose conversation a turn belongs to."""

    username: str
    conversation_id: str


@dataclass(frozen=True, slots=True)
class AudioClip:
    pcm: bytes  # PCM16 LE mono
    sample_rate: int


@dataclass(frozen=True, slots=True)
class AgentDelta:
    """Text the agent is writing for the user."""

    text: str


@dataclass(frozen=True, slots=True)
class AgentNotice:
    """Agent output that is shown but never voiced (reasoning, tool calls, stats)."""

    kind: str
    text: str


AGENT_ERROR = "error"  # the `AgentNotice.kind` of an agent that failed: a code for the client, never speech


AgentOutput = AgentDelta | AgentNotice


class AgentRun(Protocol):
    """One agent request running in the host pipeline."""

    def outputs(self) -> AsyncIterator[AgentOutput]:
        """The agent's output until it finishes."""
        ...

    def stop(self) -> None:
        """Ask the host to stop the agent now (idempotent, never blocks)."""
        ...

    async def closed(self) -> None:
        """Return once the host has finished the request, history included."""
        ...

    async def keep_heard(self, heard: str) -> None:
        """After an interrupt: keep only what the user heard of this answer in history."""
        ...

    def commit(self) -> None:
        """A speculative run's turn is confirmed: its tool calls may run and its exchange is kept."""
        ...

    async def discard(self) -> None:
        """After `stop()` and `closed()` of a speculative run: remove its whole exchange from history."""
        ...


class Agent(Protocol):
    def start(self, conversation: Conversation, text: str, *, speculative: bool = False) -> AgentRun:
        """Send the user's text into the host pipeline. A speculative run runs no tool and saves
        nothing the user sees until `commit()`."""
        ...


class Transcriber(Protocol):
    async def transcribe(self, wav: bytes) -> str: ...


class Synthesizer(Protocol):
    def stream(self, text: str) -> AsyncIterator[AudioClip]:
        """Audio of `text`, in one or more chunks, as the provider produces it."""
        ...


class Speech(Protocol):
    """Per-conversation provider lookup (the plugin's choice, else the session's)."""

    async def transcriber(self, conversation: Conversation) -> Transcriber | None: ...

    async def synthesizer(self, conversation: Conversation) -> Synthesizer | None: ...
