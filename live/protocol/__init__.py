"""Wire dialects: each translates frames to engine commands and events to frames.

A dialect is pure (no sockets, tasks or clock): `decode_text`/`decode_binary`
return commands or raise `ProtocolError`; `encode` returns the frames for an
event (possibly none). Adding a dialect never touches the engine.
"""

from __future__ import annotations

from typing import Protocol

from ..engine.events import Command, Event


class Dialect(Protocol):
    name: str

    def decode_text(self, raw: str) -> list[Command]: ...

    def decode_binary(self, data: bytes) -> list[Command]: ...

    def encode(self, event: Event) -> list[str | bytes]: ...
