"""What the realtime backend needs from the host, as small protocols.

`live/host/realtime_host.py` implements them on AstrBot (persona, conversation
history, function tools); tests may implement them on anything. The realtime
backend imports nothing from AstrBot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..engine.ports import Conversation
from .events import HistoryItem, ToolSpec


@dataclass(frozen=True, slots=True)
class RealtimeContext:
    """Who the model is and what it remembers, read from the host for one conversation."""

    instructions: str  # the conversation's persona prompt (with the host's own additions, if any)
    history: tuple[HistoryItem, ...]  # the last turns of the host conversation, oldest first
    tools: tuple[ToolSpec, ...]  # the host's enabled function tools


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """What a tool call returned, as text for the model; `ok` is False when it failed or was refused."""

    output: str
    ok: bool = True


class RealtimeHost(Protocol):
    async def context(self, conversation: Conversation) -> RealtimeContext:
        """The persona, recent history and tools the conversation's realtime session starts with."""
        ...

    async def remember(
        self, conversation: Conversation, user_text: str, assistant_text: str, *, interrupted: bool = False
    ) -> None:
        """Write one exchange into the host conversation (the user's words and what was heard of the answer),
        so WebChat and the cascaded backend see it. An empty `assistant_text` writes the user's words alone;
        `interrupted` marks an answer cut by the user, as the cascaded backend marks it."""
        ...

    async def call_tool(self, conversation: Conversation, name: str, arguments: dict) -> ToolOutcome:
        """Run one of the host's function tools through the host's own tool machinery."""
        ...
