"""Wire dialects: each translates frames to engine commands and events to frames.

A dialect is pure (no sockets, tasks or clock): `decode_text`/`decode_binary`
return commands or raise `ProtocolError`; `encode` returns the frames for an
event (possibly none). Adding a dialect never touches the engine.

Besides engine commands and events, a dialect reads and writes a few items the
engine never sees: `Reply` (its own answer to a housekeeping request such as
OLV's `fetch-configs`), `ChatRequest` (a unified chat mode frame, for the
host's chat handler) and `ChatReply` (what that handler sends back). The
connection queues `Reply` and `ChatReply` in the same outbox as the events, so
every frame still leaves in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ..engine.events import Command, Event


@dataclass(frozen=True, slots=True)
class Reply:
    """Frames answering one client frame, written by the dialect that decoded it."""

    frames: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A unified chat mode frame (`ct: "chat"`, or any frame on a `ct=chat` socket)."""

    frame: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ChatReply:
    """A frame the host's chat handler sends back; the dialect writes it with `ct: "chat"`."""

    payload: dict[str, Any]


Decoded = Command | Reply | ChatRequest
Outgoing = Event | Reply | ChatReply


class Dialect(Protocol):
    name: str

    def decode_text(self, raw: str) -> list[Decoded]: ...

    def decode_binary(self, data: bytes) -> list[Decoded]: ...

    def encode(self, event: Outgoing) -> list[str | bytes]: ...
