"""Field readers every dialect shares: one rule per kind of field, one error code per kind of fault.

The codes follow the error table of docs/live-api.md: a required field that is absent or empty is
`MISSING_FIELD`; a field of the wrong type or out of range is `INVALID_MESSAGE_FORMAT`; a type the
dialect does not know is `UNKNOWN_MESSAGE_TYPE`.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from ..errors import ErrorCode, ProtocolError
from . import ChatReply, ChatRequest, Reply

MAX_ID_CHARS = 128  # stamps and turn ids: anything longer is not an id this server gave or expects
MAX_SAFE_INTEGER = 2**53  # JSON numbers beyond this lose precision in JavaScript clients
NOT_ANSWERED = {
    "empty_transcript": "Not answered: no words were heard.",
    "echo": "Not answered: only the character's own voice was heard.",
    "backchannel": "Not an interruption: only an acknowledgement was heard; the answer goes on.",
    "noise": "Not an interruption: only a short noise was heard; the answer goes on.",
}
"""What dialects without a `transcript_empty` frame show for a `NothingHeard` notice, by reason."""


def dumps(frame: dict[str, Any]) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


def shown(value: Any, limit: int = 64) -> str:
    """A client value quoted in an error message: cut, and sendable even if it held a lone surrogate."""
    return str(value)[:limit].encode("utf-8", "replace").decode("utf-8")


def _sendable(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_object(raw: str, type_key: str) -> dict[str, Any]:
    """Parse a JSON object frame or raise INVALID_MESSAGE_FORMAT.

    A lone UTF-16 surrogate would make every echo of the frame unsendable, so it is refused: in the
    frame's type it is an unknown type, anywhere else a malformed frame.
    """
    try:
        frame = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(ErrorCode.INVALID_MESSAGE_FORMAT, f"frame is not valid JSON: {shown(exc, 200)}") from None
    if not isinstance(frame, dict):
        raise ProtocolError(ErrorCode.INVALID_MESSAGE_FORMAT, "frame must be a JSON object")
    if "\\ud" in raw.lower() and not _sendable(frame):
        if isinstance(frame.get(type_key), str) and not _sendable(frame[type_key]):
            raise ProtocolError(ErrorCode.UNKNOWN_MESSAGE_TYPE, f"unknown type: {shown(frame[type_key])}")
        raise ProtocolError(ErrorCode.INVALID_MESSAGE_FORMAT, "frame holds a lone UTF-16 surrogate")
    return frame


def frame_type(frame: dict[str, Any], key: str) -> str:
    """The frame's type (`t`, `type` or `action`): a non-empty string."""
    return required(frame, key, str, "a string (the frame type)")


def unknown_type(key: str, kind: str) -> ProtocolError:
    return ProtocolError(ErrorCode.UNKNOWN_MESSAGE_TYPE, f"unknown {key}: {shown(kind)}")


def chat_request(frame: dict[str, Any], chat_default: bool) -> ChatRequest | None:
    """The frame as a unified chat mode request, or None for a live frame: its `ct`, else the socket's."""
    ct = frame.get("ct")
    if ct is None:
        return ChatRequest(frame) if chat_default else None
    if ct == "chat":
        return ChatRequest(frame)
    if ct == "live":
        return None
    raise ProtocolError(ErrorCode.INVALID_MESSAGE_FORMAT, "'ct' must be \"live\" or \"chat\"")


def housekeeping(item: object) -> list[str | bytes] | None:
    """Frames of the items the connection queues beside engine events (answers, chat replies)."""
    match item:
        case Reply(frames=frames):
            return [dumps(frame) for frame in frames]
        case ChatReply(payload=payload):
            return [dumps({"ct": "chat", **payload})]
    return None


def required(frame: dict[str, Any], key: str, expected: type, described: str) -> Any:
    """A field that must be present and non-empty (else MISSING_FIELD) and of one type (else
    INVALID_MESSAGE_FORMAT, which `described` explains: "a string", "an object", ...)."""
    value = frame.get(key)
    if value is None or value == "":
        raise ProtocolError(ErrorCode.MISSING_FIELD, f"'{key}' is required")
    if not isinstance(value, expected):
        raise ProtocolError(ErrorCode.INVALID_MESSAGE_FORMAT, f"'{key}' must be {described}")
    return value


def decode_b64(value: Any, field: str = "data") -> bytes:
    if value is None or value == "":
        raise ProtocolError(ErrorCode.MISSING_FIELD, f"'{field}' is required (base64 audio)")
    if not isinstance(value, str):
        raise ProtocolError(ErrorCode.INVALID_MESSAGE_FORMAT, f"'{field}' must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError(ErrorCode.INVALID_AUDIO, f"'{field}' is not valid base64") from None


def pcm16(data: bytes) -> bytes:
    if len(data) % 2:
        raise ProtocolError(ErrorCode.INVALID_AUDIO, "PCM16 audio must have an even number of bytes")
    return data


def optional_number(frame: dict[str, Any], key: str) -> int | None:
    """A non-negative number (a float is rounded down), or None when absent."""
    value = frame.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < MAX_SAFE_INTEGER:
        raise ProtocolError(ErrorCode.INVALID_MESSAGE_FORMAT, f"'{key}' must be a non-negative number")
    return int(value)


def optional_integer(frame: dict[str, Any], key: str) -> int | None:
    """A non-negative JSON integer (no fraction, so 0.5 or 1e-400 never pass as 0), or None."""
    value = frame.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_SAFE_INTEGER:
        raise ProtocolError(ErrorCode.INVALID_MESSAGE_FORMAT, f"'{key}' must be a non-negative integer")
    return value


def optional_id(frame: dict[str, Any], key: str) -> str | None:
    """An id this server handed out (a turn id): a string, or None when absent."""
    value = frame.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_ID_CHARS:
        raise ProtocolError(ErrorCode.INVALID_MESSAGE_FORMAT, f"'{key}' must be a string of at most {MAX_ID_CHARS} characters")
    return value


def required_stamp(frame: dict[str, Any]) -> str:
    """An utterance stamp: a non-empty string, or a positive integer (a millisecond timestamp)."""
    stamp = frame.get("stamp")
    if stamp is None or stamp == "":
        raise ProtocolError(ErrorCode.MISSING_FIELD, "'stamp' is required")
    if isinstance(stamp, str) and len(stamp) <= MAX_ID_CHARS:
        return stamp
    if isinstance(stamp, int) and not isinstance(stamp, bool) and 0 < stamp < MAX_SAFE_INTEGER:
        return str(stamp)
    raise ProtocolError(
        ErrorCode.INVALID_MESSAGE_FORMAT, f"'stamp' must be a string of at most {MAX_ID_CHARS} characters or a positive integer"
    )


def text_of(frame: dict[str, Any], max_chars: int) -> str:
    """`text`, or the plain parts of `message` (the Live API's part list), stripped."""
    text = frame.get("text")
    if text is None and frame.get("message") is not None:
        text = _plain_text(frame["message"])
    if text is None:
        raise ProtocolError(ErrorCode.MISSING_FIELD, "'text' is required")
    if not isinstance(text, str):
        raise ProtocolError(ErrorCode.INVALID_MESSAGE_FORMAT, "'text' must be a string")
    if not text.strip():
        raise ProtocolError(ErrorCode.MISSING_FIELD, "'text' must not be empty")
    if len(text) > max_chars:
        raise ProtocolError(ErrorCode.TEXT_TOO_LONG, f"text is longer than {max_chars} characters")
    return text.strip()


def _plain_text(message: Any) -> str:
    """The `text` of every `plain` part; other parts (images, ...) are not read here."""
    if not isinstance(message, list) or not all(isinstance(part, dict) for part in message):
        raise ProtocolError(ErrorCode.INVALID_MESSAGE_FORMAT, "'message' must be a list of part objects")
    texts = [part.get("text") for part in message if part.get("type") == "plain"]
    if not all(isinstance(text, str) for text in texts):
        raise ProtocolError(ErrorCode.INVALID_MESSAGE_FORMAT, "the 'text' of a plain part must be a string")
    return "".join(texts)  # type: ignore[arg-type]


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
