"""The AstrBot Live protocol (JSON frames keyed by `t`), plus our extensions.

Seed frames follow AstrBot's Live API document so its clients work
unchanged; extensions only add keys and types (see docs/live-api.md).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from .. import PROTOCOL_VERSION
from ..engine import events as ev
from ..errors import ErrorCode, ProtocolError

NAME = "astrbot"
_MAX_DEPTH = 32


def dumps(frame: dict[str, Any]) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


def parse_object(raw: str) -> dict[str, Any]:
    """Parse a JSON object frame or raise INVALID_MESSAGE_FORMAT."""
    try:
        frame = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(ErrorCode.INVALID_MESSAGE_FORMAT, f"frame is not valid JSON: {exc}") from None
    if not isinstance(frame, dict):
        raise ProtocolError(ErrorCode.INVALID_MESSAGE_FORMAT, "frame must be a JSON object")
    if "\\ud" in raw.lower():  # a lone surrogate escape would make every echo of the text unsendable
        try:
            json.dumps(frame, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ProtocolError(ErrorCode.INVALID_MESSAGE_FORMAT, "frame holds a lone UTF-16 surrogate") from None
    return frame


def decode_b64(value: Any, field: str = "data") -> bytes:
    if not isinstance(value, str):
        raise ProtocolError(ErrorCode.MISSING_FIELD, f"'{field}' must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError(ErrorCode.INVALID_AUDIO, f"'{field}' is not valid base64") from None


def pcm16(data: bytes) -> bytes:
    if len(data) % 2:
        raise ProtocolError(ErrorCode.INVALID_AUDIO, "PCM16 audio must have an even number of bytes")
    return data


def optional_int(frame: dict[str, Any], key: str) -> int | None:
    value = frame.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 2**53:
        raise ProtocolError(ErrorCode.INVALID_MESSAGE_FORMAT, f"'{key}' must be a non-negative number")
    return int(value)


def optional_str(frame: dict[str, Any], key: str) -> str | None:
    value = frame.get(key)
    if value is None:
        return None
    if not isinstance(value, str | int):
        raise ProtocolError(ErrorCode.INVALID_MESSAGE_FORMAT, f"'{key}' must be a string")
    return str(value)


def required_stamp(frame: dict[str, Any]) -> str:
    stamp = optional_str(frame, "stamp")
    if stamp is None:
        raise ProtocolError(ErrorCode.MISSING_FIELD, "'stamp' is required")
    return stamp


def text_of(frame: dict[str, Any], max_chars: int) -> str:
    """`text`, or the plain parts of `message` (the Live API's part list)."""
    text = frame.get("text")
    if text is None and isinstance(frame.get("message"), list):
        text = "".join(
            str(part.get("text", ""))
            for part in frame["message"]
            if isinstance(part, dict) and part.get("type") == "plain"
        )
    if not isinstance(text, str) or not text.strip():
        raise ProtocolError(ErrorCode.MISSING_FIELD, "'text' must be a non-empty string")
    if len(text) > max_chars:
        raise ProtocolError(ErrorCode.TEXT_TOO_LONG, f"text is longer than {max_chars} characters")
    return text.strip()


VIEWER_KINDS = ("danmaku", "superchat", "gift", "guard", "entry")


def viewer_of(frame: dict[str, Any]) -> tuple[str, str] | None:
    """(name, id) from `user: {name, id}` or `from_name`; None when the frame names nobody."""
    user = frame.get("user")
    if isinstance(user, dict):
        name, uid = user.get("name"), user.get("id")
    else:
        name, uid = frame.get("from_name"), None
    if name is None:
        return None
    if not isinstance(name, str) or not isinstance(uid, str | int | type(None)) or isinstance(uid, bool):
        raise ProtocolError(ErrorCode.INVALID_MESSAGE_FORMAT, "'user.name' must be a string and 'user.id' a string")
    return name, "" if uid is None else str(uid)


def viewer_event(frame: dict[str, Any], max_text_chars: int) -> ev.ViewerEvent:
    """A `viewer_event` object (also the body of the HTTP ingestion endpoint)."""
    kind = frame.get("kind")
    if kind not in VIEWER_KINDS:
        raise ProtocolError(ErrorCode.INVALID_MESSAGE_FORMAT, f"'kind' must be one of {', '.join(VIEWER_KINDS)}")
    viewer = viewer_of(frame)
    if viewer is None or not viewer[0].strip():
        raise ProtocolError(ErrorCode.MISSING_FIELD, "'user.name' is required")
    text = frame.get("text", "")
    if not isinstance(text, str):
        raise ProtocolError(ErrorCode.INVALID_MESSAGE_FORMAT, "'text' must be a string")
    if len(text) > max_text_chars:
        raise ProtocolError(ErrorCode.TEXT_TOO_LONG, f"text is longer than {max_text_chars} characters")
    if kind in ("danmaku", "superchat") and not text.strip():
        raise ProtocolError(ErrorCode.MISSING_FIELD, f"a {kind} needs 'text'")
    value = frame.get("value", 0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e9:
        raise ProtocolError(ErrorCode.INVALID_MESSAGE_FORMAT, "'value' must be a non-negative number")
    gift = frame.get("gift") or {}
    platform = frame.get("platform", "")
    if not isinstance(gift, dict) or not isinstance(platform, str):
        raise ProtocolError(ErrorCode.INVALID_MESSAGE_FORMAT, "'gift' must be an object and 'platform' a string")
    gift_name, count = gift.get("name", ""), gift.get("count", 1)
    if not isinstance(gift_name, str) or isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ProtocolError(ErrorCode.INVALID_MESSAGE_FORMAT, "'gift' must be {name: string, count: positive integer}")
    return ev.ViewerEvent(
        kind, viewer[0], viewer[1], text, float(value), gift_name, count, platform  # type: ignore[arg-type]
    )


def membership_json(room: ev.RoomMembership) -> dict[str, Any]:
    return {"name": room.name, "role": room.role, "audio": room.receive_audio}


def viewers_json(viewers: tuple[ev.ViewerEvent, ...]) -> list[dict[str, Any]]:
    return [{"name": v.viewer_name, "kind": v.kind, "text": v.text, "value": v.value} for v in viewers]


class AstrBotLiveDialect:
    name = NAME

    def __init__(self, max_text_chars: int = 4000) -> None:
        self._max_text = max_text_chars

    def decode_binary(self, data: bytes) -> list[ev.Command]:
        return [ev.AppendAudio(pcm16(data))]

    def decode_text(self, raw: str) -> list[ev.Command]:
        frame = parse_object(raw)
        kind = frame.get("t")
        if kind is None:
            raise ProtocolError(ErrorCode.MISSING_FIELD, "'t' (the frame type) is required")
        match kind:
            case "start_speaking":
                return [ev.StartSpeaking(required_stamp(frame))]
            case "speaking_part":
                return [ev.AppendAudio(pcm16(decode_b64(frame.get("data"))))]
            case "end_speaking":
                return [ev.EndSpeaking(required_stamp(frame))]
            case "text_input":
                viewer = viewer_of(frame)
                return [ev.SendText(text_of(frame, self._max_text), from_name=viewer[0] if viewer else None)]
            case "viewer_event":
                return [viewer_event(frame, self._max_text)]
            case "set_audio":
                enabled = frame.get("enabled")
                if not isinstance(enabled, bool):
                    raise ProtocolError(ErrorCode.MISSING_FIELD, "'enabled' must be true or false")
                return [ev.SetReceiveAudio(enabled)]
            case "interrupt":
                return [ev.Interrupt(optional_str(frame, "turn"), optional_int(frame, "played_ms"))]
            case "playback_report":
                played = optional_int(frame, "played_ms")
                if played is None:
                    raise ProtocolError(ErrorCode.MISSING_FIELD, "'played_ms' is required")
                return [ev.ReportPlayback(optional_str(frame, "turn"), played)]
            case "mute":
                return [ev.SetMuted(True)]
            case "unmute":
                return [ev.SetMuted(False)]
            case "ping":
                return [ev.Ping(frame.get("data"))]
            case "configure":
                audio = frame.get("output_audio")
                if not isinstance(audio, dict) or not isinstance(audio.get("format"), str):
                    raise ProtocolError(ErrorCode.MISSING_FIELD, "'output_audio.format' is required")
                return [ev.ConfigureOutput(audio["format"], optional_int(audio, "sample_rate") or 0)]
            case _:
                raise ProtocolError(ErrorCode.UNKNOWN_MESSAGE_TYPE, f"unknown frame type: {str(kind)[:64]}")

    def encode(self, event: ev.Event) -> list[str | bytes]:
        frame = self._frame(event)
        return [dumps(frame)] if frame is not None else []

    @staticmethod
    def _frame(event: ev.Event) -> dict[str, Any] | None:
        match event:
            case ev.SessionStarted():
                return {
                    "t": "hello",
                    "data": {
                        "protocol": "astrbot-live",
                        "version": PROTOCOL_VERSION,
                        "session_id": event.session_id,
                        "conversation_id": event.conversation_id,
                        "username": event.username,
                        "server_vad": event.server_vad,
                        "input_audio": {"format": "pcm16", "sample_rate": 16000, "channels": 1},
                        "output_audio": {"format": event.output_format, "sample_rate": event.output_sample_rate or None},
                        "features": list(event.features),
                        **({"room": membership_json(event.room)} if event.room else {}),
                    },
                }
            case ev.StateChanged(state=state):
                return {"t": "state", "data": {"state": state}}
            case ev.SpeechDetected(state=state):
                return {"t": "vad", "data": {"state": state}}
            case ev.UserTranscribed(turn_id=turn, text=text, ts=ts, viewers=viewers):
                data: dict[str, Any] = {"text": text, "ts": ts}
                if viewers:
                    data["viewers"] = viewers_json(viewers)
                return {"t": "user_msg", "data": data, "turn": turn}
            case ev.NothingHeard(turn_id=turn, reason=reason):
                return {"t": "transcript_empty", "data": {"reason": reason}, "turn": turn}
            case ev.AgentTextDelta(turn_id=turn, text=text):
                return {"t": "bot_delta_chunk", "data": {"text": text}, "turn": turn}
            case ev.SentenceStarted(turn_id=turn, seq=seq, text=text):
                return {"t": "bot_text_chunk", "data": {"text": text}, "turn": turn, "seq": seq}
            case ev.SentenceAudio():
                return {
                    "t": "response",
                    "data": base64.b64encode(event.audio).decode("ascii"),
                    "turn": event.turn_id,
                    "seq": event.seq,
                    "format": event.audio_format,
                    "sample_rate": event.sample_rate,
                    "duration_ms": event.duration_ms,
                    "final": event.final,
                }
            case ev.BotReplied(turn_id=turn, text=text, ts=ts):
                return {"t": "bot_msg", "data": {"text": text, "ts": ts}, "turn": turn}
            case ev.PlaybackStopped(turn_id=turn):
                return {"t": "stop_play", "turn": turn}
            case ev.TurnEnded(turn_id=turn, interrupted=interrupted, text=text):
                return {"t": "end", "turn": turn, "data": {"interrupted": interrupted, "text": text}}
            case ev.TurnMetrics(turn_id=turn, timeline=timeline, extra=extra):
                return {"t": "metrics", "turn": turn, "data": {"timeline": timeline, **extra}}
            case ev.ErrorRaised(code=code, message=message, turn_id=turn):
                frame = {"t": "error", "code": str(code), "data": message}
                if turn:
                    frame["turn"] = turn
                return frame
            case ev.Pong(payload=payload):
                return {"t": "pong", "data": payload}
            case ev.OutputConfigured(audio_format=fmt, sample_rate=rate):
                return {"t": "configured", "data": {"output_audio": {"format": fmt, "sample_rate": rate or None}}}
            case ev.ReceiveAudioConfigured(enabled=enabled):
                return {"t": "configured", "data": {"receive_audio": enabled}}
            case ev.RoomUpdated():
                return {
                    "t": "room",
                    "data": {
                        "name": event.name,
                        "state": event.state,
                        "queue": event.queue_length,
                        "members": event.members,
                        "you": {"role": event.you.role, "audio": event.you.receive_audio},
                    },
                }
            case ev.ViewerDropped(reason=reason):
                return {"t": "viewer_dropped", "data": {"reason": reason}}
        return None
