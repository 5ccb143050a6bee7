"""The AstrBot Live protocol (JSON frames keyed by `t`), plus our extensions.

Seed frames follow AstrBot's Live API document so its clients work
unchanged; extensions only add keys and types (see docs/live-api.md).
"""

from __future__ import annotations

import base64
from typing import Any

from .. import PROTOCOL_VERSION
from ..engine import events as ev
from ..errors import ErrorCode, ProtocolError
from . import Decoded, Outgoing
from .fields import (
    chat_request,
    decode_b64,
    dumps,
    frame_type,
    housekeeping,
    optional_id,
    optional_integer,
    optional_number,
    parse_object,
    pcm16,
    required,
    required_stamp,
    text_of,
    unknown_type,
    viewer_of,
)

NAME = "astrbot"
# What this dialect's `hello` promises its clients (the `features` list of docs/live-api.md).
FEATURES = (
    "turn_ids",
    "binary_pcm_input",
    "server_vad",
    "ping",
    "mute",
    "interrupt_played_ms",
    "playback_report",
    "output_format",
    "state",
    "text_input",
    "receive_audio",
    "rooms",
    "pause_play",
)


VIEWER_KINDS = ("danmaku", "superchat", "gift", "guard", "entry")


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
    text = text[:max_text_chars]  # viewer text is cut, never refused (the room cuts it further)
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

    def __init__(self, max_text_chars: int = 4000, *, chat_default: bool = False) -> None:
        self._max_text = max_text_chars
        self._chat_default = chat_default  # a `ct=chat` socket: frames without `ct` are chat frames

    def decode_binary(self, data: bytes) -> list[Decoded]:
        return [ev.AppendAudio(pcm16(data))]

    def decode_text(self, raw: str) -> list[Decoded]:
        frame = parse_object(raw, "t")
        if (chat := chat_request(frame, self._chat_default)) is not None:
            return [chat]
        match frame_type(frame, "t"):
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
                return [ev.SetReceiveAudio(required(frame, "enabled", bool, "true or false"))]
            case "interrupt":
                return [ev.Interrupt(optional_id(frame, "turn"), optional_number(frame, "played_ms"))]
            case "playback_report":
                turn, played = optional_id(frame, "turn"), optional_number(frame, "played_ms")
                if played is None:
                    raise ProtocolError(ErrorCode.MISSING_FIELD, "'played_ms' is required")
                return [ev.ReportPlayback(turn, played)]
            case "mute":
                return [ev.SetMuted(True)]
            case "unmute":
                return [ev.SetMuted(False)]
            case "ping":
                return [ev.Ping(frame.get("data"))]
            case "configure":
                audio = required(frame, "output_audio", dict, "an object")
                fmt = required(audio, "format", str, "a string")
                return [ev.ConfigureOutput(fmt, optional_integer(audio, "sample_rate") or 0)]
            case kind:
                raise unknown_type("frame type", kind)

    def encode(self, event: Outgoing) -> list[str | bytes]:
        if (frames := housekeeping(event)) is not None:
            return frames
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
                        "backend": event.backend,
                        "input_audio": {"format": "pcm16", "sample_rate": 16000, "channels": 1},
                        "output_audio": {"format": event.output_format, "sample_rate": event.output_sample_rate or None},
                        "features": list(FEATURES),
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
            case ev.PlaybackPaused(turn_id=turn):
                return {"t": "pause_play", "turn": turn}
            case ev.PlaybackResumed(turn_id=turn):
                return {"t": "resume_play", "turn": turn}
            case ev.TurnEnded(turn_id=turn, interrupted=interrupted, text=text, heard=heard):
                data = {"interrupted": interrupted, "text": text}
                if heard is not None:
                    data["heard"] = heard  # what history keeps of an interrupted answer
                return {"t": "end", "turn": turn, "data": data}
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
            case ev.ViewerDropped(reason=reason, viewer=viewer, queued=queued, via=via):
                data: dict[str, Any] = {"reason": reason}
                if queued:
                    data["queued"] = True
                if viewer is not None:
                    data["viewer"] = viewers_json((viewer,))[0]
                if via:
                    data["via"] = via
                return {"t": "viewer_dropped", "data": data}
        return None
