"""The connect request: every query parameter of `/api/v1/live/ws`, read once, typed.

Credentials are not part of it (see `credentials.py`): they are checked first, on their own.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Literal

from ..config import LiveSettings
from ..engine.speech import OutputFormat
from ..errors import ErrorCode, ProtocolError
from ..rooms.room import ROLES, ROOM_NAME

DEFAULT_DIALECT = "astrbot"
BACKENDS = ("cascade", "realtime")
_OFF = ("0", "false", "off", "no")


@dataclass(frozen=True, slots=True)
class ConnectRequest:
    dialect: str
    chat_default: bool  # `ct=chat`: frames without a `ct` key are unified chat frames
    output: OutputFormat
    conversation_id: str | None  # None: the user's own stable live conversation
    room: str | None
    role: Literal["streamer", "bridge", "listener"]
    receive_audio: bool  # False: no answer audio frames for this client (captions only)
    server_vad: bool  # False (`vad=off`): the client delimits utterances itself
    reports_playback: bool  # the client sends `playback_report` after a server-initiated `stop_play`
    pause_play: bool = False  # the client holds playback on `pause_play`: speech pauses the answer before it cuts
    backend: str | None = None  # `?backend=cascade|realtime`; None: the plugin's setting

    @staticmethod
    def dialect_of(query: Mapping[str, str], dialects: Collection[str]) -> str:
        """The dialect to answer in, even when the rest of the query is refused."""
        name = (query.get("protocol") or DEFAULT_DIALECT).lower()
        return name if name in dialects else DEFAULT_DIALECT

    @classmethod
    def parse(cls, query: Mapping[str, str], settings: LiveSettings, dialects: Collection[str]) -> ConnectRequest:
        """The request, or ProtocolError(INVALID_MESSAGE_FORMAT) naming what is wrong."""
        dialect = (query.get("protocol") or DEFAULT_DIALECT).lower()
        ct = (query.get("ct") or "live").lower()
        output = _output_format(query, settings)
        if dialect not in dialects or ct not in ("live", "chat") or output is None:
            raise ProtocolError(
                ErrorCode.INVALID_MESSAGE_FORMAT,
                f"unsupported query: protocol must be one of {sorted(dialects)}, ct live or chat, "
                "audio_format wav or pcm16, sample_rate 0 or 8000-48000",
            )
        backend = query.get("backend")
        if backend is not None and backend.lower() not in BACKENDS:
            raise ProtocolError(ErrorCode.INVALID_MESSAGE_FORMAT, "backend must be cascade or realtime")
        room, role = query.get("room"), (query.get("role") or "streamer").lower()
        if room is not None and (not ROOM_NAME.match(room) or role not in ROLES):
            raise ProtocolError(
                ErrorCode.INVALID_MESSAGE_FORMAT,
                "room must be 1-64 letters, digits, '-', '_' or '.', and role streamer, bridge or listener",
            )
        return cls(
            dialect=dialect,
            chat_default=ct == "chat",
            output=output,
            conversation_id=query.get("conversation_id") or query.get("session_id"),
            room=room,
            role=role if room is not None else "streamer",  # type: ignore[arg-type]  # checked against ROLES
            receive_audio=(query.get("audio") or "1").lower() not in _OFF,
            server_vad=(query.get("vad") or "server").lower() not in ("off", "client", "none"),
            reports_playback=query.get("report_playback") in ("1", "true"),
            # only this dialect has frames to hold playback; OLV and N.E.K.O clients keep today's barge-in
            pause_play=dialect == DEFAULT_DIALECT and query.get("pause_play") in ("1", "true"),
            backend=backend.lower() if backend is not None else None,
        )


def _output_format(query: Mapping[str, str], settings: LiveSettings) -> OutputFormat | None:
    fmt = (query.get("audio_format") or settings.output_audio_format).lower()
    try:
        rate = int(query.get("sample_rate") or settings.output_sample_rate)
    except ValueError:
        return None
    if fmt not in ("wav", "pcm16") or not (rate == 0 or 8000 <= rate <= 48000):
        return None
    return OutputFormat(fmt, rate)
