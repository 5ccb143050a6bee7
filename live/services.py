"""What the live endpoint needs from its host: the contract between `host/` (which builds it from
AstrBot's plugin context) and `transport/` (which serves with it). Neither imports the other."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .audio.vad import Endpointer
from .config import LiveSettings
from .engine.ports import Agent, Speech
from .protocol import Dialect


class Access(Protocol):
    def verify_dashboard_token(self, token: str) -> str: ...

    async def verify_api_key(self, raw_key: str, raw_username: str | None) -> str: ...

    async def open_conversation(self, username: str, conversation_id: str | None) -> str: ...


# (settings, chat_default) -> a fresh dialect for one connection
DialectFactory = Callable[[LiveSettings, bool], Dialect]


@dataclass(slots=True)
class Services:
    access: Callable[[Any], Access]  # app -> access checks
    agent: Agent
    speech: Speech
    chat: Callable[..., Any] | None  # (app, access, username, cid, send_json) -> chat bridge
    endpointer: Callable[[LiveSettings], Endpointer] | None
    dialects: dict[str, DialectFactory]
    turn_model: Callable[[], Any] | None = None  # loads the end-of-turn model (off the loop); None: silence rule
    realtime_host: Any = None  # a `live.realtime.ports.RealtimeHost`: persona, memory and tools for the realtime backend
