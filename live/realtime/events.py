"""The OpenAI Realtime event protocol, translated both ways. Pure: no sockets, tasks or clock.

`encode_*` build the client events a session sends; `decode(event)` turns one
server event into the typed event the engine needs, or None when the engine
has no use for it. Both naming generations are read: the GA names
(`response.output_audio.delta`, `response.output_audio_transcript.delta`,
`response.output_text.delta`) and the beta names that Qwen-Omni, GLM and
local servers still speak (`response.audio.delta`, ...). Outgoing shapes
follow `api`: "ga" (`session.type`, `audio.input/output`) or "beta"
(`modalities`, `input_audio_format`, `turn_detection` at the top level).

`decode` never raises: a malformed event of a known type becomes a
`RealtimeError` with code PROTOCOL; an unknown or non-dict event is None.

Example:
    >>> ws.send_json(encode_append_audio(pcm24k))
    >>> event = decode(json.loads(text))   # AudioDelta(pcm=..., ...) or None
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

MODEL_RATE = 24000  # the protocol's only PCM16 rate, input and output
Api = Literal["ga", "beta"]

# ---------------------------------------------------------------- errors


class RealtimeErrorCode(StrEnum):
    """What went wrong with the realtime provider, in words a user can act on."""

    AUTH_FAILED = "REALTIME_AUTH_FAILED"  # bad or missing API key, or no access to the model
    RATE_LIMITED = "REALTIME_RATE_LIMITED"  # too many requests or tokens, or quota used up
    REFUSED = "REALTIME_REFUSED"  # the provider's safety filter refused or cut off the answer
    SESSION_EXPIRED = "REALTIME_SESSION_EXPIRED"  # the provider's session time limit was reached
    SERVER_ERROR = "REALTIME_SERVER_ERROR"  # the provider failed on its side
    BAD_REQUEST = "REALTIME_BAD_REQUEST"  # the provider rejected an event we sent
    DISCONNECTED = "REALTIME_DISCONNECTED"  # the connection dropped
    CONNECT_FAILED = "REALTIME_CONNECT_FAILED"  # the provider could not be reached
    TIMEOUT = "REALTIME_TIMEOUT"  # the provider did not answer in time
    PROTOCOL = "REALTIME_PROTOCOL"  # the provider sent an event we cannot read


_MESSAGES: dict[RealtimeErrorCode, str] = {
    RealtimeErrorCode.AUTH_FAILED: "The realtime provider refused the API key; check realtime_api_key.",
    RealtimeErrorCode.RATE_LIMITED: "The realtime provider is rate limiting this key (or its quota ran out).",
    RealtimeErrorCode.REFUSED: "The realtime model refused to answer this.",
    RealtimeErrorCode.SESSION_EXPIRED: "The realtime session reached the provider's time limit.",
    RealtimeErrorCode.SERVER_ERROR: "The realtime provider had an internal error.",
    RealtimeErrorCode.BAD_REQUEST: "The realtime provider rejected a request.",
    RealtimeErrorCode.DISCONNECTED: "The connection to the realtime provider dropped.",
    RealtimeErrorCode.CONNECT_FAILED: "The realtime provider could not be reached; check realtime_url.",
    RealtimeErrorCode.TIMEOUT: "The realtime provider did not answer in time.",
    RealtimeErrorCode.PROTOCOL: "The realtime provider sent an event that could not be read.",
}

# The session cannot be used after these; a fresh one is needed.
SESSION_ENDING = frozenset(
    {
        RealtimeErrorCode.AUTH_FAILED,
        RealtimeErrorCode.SESSION_EXPIRED,
        RealtimeErrorCode.DISCONNECTED,
        RealtimeErrorCode.CONNECT_FAILED,
    }
)
# Worth trying again on a new attempt (a bad key or a refusal is not).
RETRYABLE = frozenset(
    {
        RealtimeErrorCode.RATE_LIMITED,
        RealtimeErrorCode.SESSION_EXPIRED,
        RealtimeErrorCode.SERVER_ERROR,
        RealtimeErrorCode.DISCONNECTED,
        RealtimeErrorCode.CONNECT_FAILED,
        RealtimeErrorCode.TIMEOUT,
    }
)

_AUTH_CODES = {"invalid_api_key", "authentication_error", "unauthorized", "permission_denied", "model_not_found"}
_RATE_CODES = {"rate_limit_exceeded", "insufficient_quota", "rate_limit_error", "too_many_requests"}
_REFUSAL_CODES = {"content_filter", "content_policy_violation", "moderation_blocked", "safety", "refusal"}
_EXPIRED_CODES = {"session_expired", "session_timeout"}
_SERVER_CODES = {"server_error", "internal_error", "service_unavailable", "overloaded"}


def error_code_for(
    provider_code: str = "", provider_type: str = "", http_status: int | None = None
) -> RealtimeErrorCode:
    """Map a provider's error code/type (or the HTTP status of a refused handshake) to ours."""
    code, kind = (provider_code or "").lower(), (provider_type or "").lower()
    if http_status in (401, 403) or code in _AUTH_CODES or kind in _AUTH_CODES:
        return RealtimeErrorCode.AUTH_FAILED
    if http_status == 429 or code in _RATE_CODES or kind in _RATE_CODES:
        return RealtimeErrorCode.RATE_LIMITED
    if code in _REFUSAL_CODES or kind in _REFUSAL_CODES:
        return RealtimeErrorCode.REFUSED
    if code in _EXPIRED_CODES:
        return RealtimeErrorCode.SESSION_EXPIRED
    if (http_status or 0) >= 500 or code in _SERVER_CODES or kind in _SERVER_CODES:
        return RealtimeErrorCode.SERVER_ERROR
    if http_status is not None and http_status not in (101, 200):
        return RealtimeErrorCode.CONNECT_FAILED
    return RealtimeErrorCode.BAD_REQUEST


# ---------------------------------------------------------------- server events (typed)


@dataclass(frozen=True, slots=True)
class SessionReady:
    """`session.created` (created=True) or `session.updated`: the effective configuration."""

    session_id: str
    created: bool
    session: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ResponseStarted:
    response_id: str


@dataclass(frozen=True, slots=True)
class AudioDelta:
    """A piece of the answer's audio: PCM16 mono at MODEL_RATE (24 kHz)."""

    pcm: bytes
    response_id: str
    item_id: str
    content_index: int = 0

    @property
    def duration_ms(self) -> float:
        return len(self.pcm) / 2 / MODEL_RATE * 1000


@dataclass(frozen=True, slots=True)
class TranscriptDelta:
    """Text of the answer as it streams: the spoken transcript, or the text of a text-only answer."""

    text: str
    response_id: str
    item_id: str
    spoken: bool = True  # False for `response.output_text.delta` / `response.text.delta`


@dataclass(frozen=True, slots=True)
class InputTranscript:
    """The model's transcription of the user's committed audio; `final` on `.completed`."""

    text: str
    item_id: str
    final: bool


@dataclass(frozen=True, slots=True)
class InputTranscriptFailed:
    """The model could not transcribe user item `item_id` (it may still answer the audio)."""

    item_id: str
    error: RealtimeError


@dataclass(frozen=True, slots=True)
class InputCommitted:
    """The input buffer became user item `item_id` (after a commit, or the model's own VAD)."""

    item_id: str


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The model's own turn detection heard the user start (`audio_start_ms` into the buffer)."""

    audio_start_ms: int
    item_id: str = ""


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    audio_end_ms: int
    item_id: str = ""


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    input_audio_tokens: int = 0
    output_audio_tokens: int = 0


ResponseStatus = Literal["completed", "cancelled", "incomplete", "failed", "in_progress"]


@dataclass(frozen=True, slots=True)
class ResponseDone:
    """`response.done`; `reason` says why a response did not complete (e.g. client_cancelled)."""

    response_id: str
    status: ResponseStatus
    reason: str = ""
    usage: Usage = field(default_factory=Usage)
    error: RealtimeError | None = None  # set for failed responses and refusals


@dataclass(frozen=True, slots=True)
class ToolCallArgumentsDelta:
    call_id: str
    item_id: str
    delta: str


@dataclass(frozen=True, slots=True)
class ToolCallRequested:
    """The model wants function `name` run with `arguments` (a JSON string, maybe malformed)."""

    call_id: str
    name: str
    arguments: str
    item_id: str = ""
    response_id: str = ""

    def parsed_arguments(self) -> dict:
        """The arguments as a dict; {} when they are empty, and ValueError when they are not a JSON object."""
        if not self.arguments.strip():
            return {}
        value = json.loads(self.arguments)
        if not isinstance(value, dict):
            raise ValueError(f"tool arguments must be a JSON object, got {type(value).__name__}")
        return value


@dataclass(frozen=True, slots=True)
class ItemTruncated:
    item_id: str
    content_index: int
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class RateLimit:
    name: str
    limit: int
    remaining: int
    reset_seconds: float


@dataclass(frozen=True, slots=True)
class RateLimitsUpdated:
    limits: tuple[RateLimit, ...]


@dataclass(frozen=True, slots=True)
class RealtimeError:
    """A provider error mapped to one of our codes; `message` is ours, the provider's text is kept apart."""

    code: RealtimeErrorCode
    message: str
    provider_code: str = ""
    provider_message: str = ""
    client_event_id: str = ""  # the event of ours that caused it, when the provider says
    http_status: int | None = None

    @property
    def ends_session(self) -> bool:
        return self.code in SESSION_ENDING

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE


ServerEvent = (
    SessionReady
    | ResponseStarted
    | AudioDelta
    | TranscriptDelta
    | InputTranscript
    | InputTranscriptFailed
    | InputCommitted
    | SpeechStarted
    | SpeechStopped
    | ResponseDone
    | ToolCallArgumentsDelta
    | ToolCallRequested
    | ItemTruncated
    | RateLimitsUpdated
    | RealtimeError
)


def realtime_error(
    code: RealtimeErrorCode,
    detail: str = "",
    *,
    provider_code: str = "",
    client_event_id: str = "",
    http_status: int | None = None,
) -> RealtimeError:
    """An error with our clear message for `code`; the provider's `detail` is kept in `provider_message`."""
    return RealtimeError(
        code=code,
        message=_MESSAGES[code],
        provider_code=provider_code,
        provider_message=detail,
        client_event_id=client_event_id,
        http_status=http_status,
    )


# ---------------------------------------------------------------- decoding


class _Malformed(Exception):
    """A known event missing a field or holding one of the wrong type."""


def _str(event: dict, key: str, default: str | None = None) -> str:
    value = event.get(key, default)
    if not isinstance(value, str):
        if value is None and default is not None:
            return default
        raise _Malformed(f"{key!r} must be a string")
    return value


def _int(event: dict, key: str, default: int | None = None) -> int:
    value = event.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Malformed(f"{key!r} must be a number")
    return int(value)


def _dict(event: dict, key: str) -> dict:
    value = event.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Malformed(f"{key!r} must be an object")
    return value


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _Malformed("'delta' is not base64 audio") from exc


def _audio_delta(e: dict) -> AudioDelta:
    return AudioDelta(
        pcm=_b64(_str(e, "delta")),
        response_id=_str(e, "response_id", ""),
        item_id=_str(e, "item_id", ""),
        content_index=_int(e, "content_index", 0),
    )


def _transcript_delta(spoken: bool):
    def build(e: dict) -> TranscriptDelta:
        return TranscriptDelta(_str(e, "delta"), _str(e, "response_id", ""), _str(e, "item_id", ""), spoken)

    return build


def _usage(raw: dict) -> Usage:
    def count(d: dict, key: str) -> int:
        value = d.get(key, 0)
        return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0

    in_details = raw.get("input_token_details") if isinstance(raw.get("input_token_details"), dict) else {}
    out_details = raw.get("output_token_details") if isinstance(raw.get("output_token_details"), dict) else {}
    return Usage(
        input_tokens=count(raw, "input_tokens"),
        output_tokens=count(raw, "output_tokens"),
        total_tokens=count(raw, "total_tokens"),
        input_audio_tokens=count(in_details, "audio_tokens"),
        output_audio_tokens=count(out_details, "audio_tokens"),
    )


_STATUSES = {"completed", "cancelled", "incomplete", "failed", "in_progress"}


def _response_done(e: dict) -> ResponseDone:
    response = _dict(e, "response")
    status = response.get("status", "completed")
    if status not in _STATUSES:
        raise _Malformed(f"unknown response status {status!r}")
    details = _dict(response, "status_details")
    reason = details.get("reason") if isinstance(details.get("reason"), str) else ""
    error: RealtimeError | None = None
    if status == "incomplete" and reason == "content_filter":
        error = realtime_error(
            RealtimeErrorCode.REFUSED, "the provider's content filter cut the answer off", provider_code=reason
        )
    elif status == "failed":  # a failure without a recognisable code is the provider's, not our request's
        cause = _provider_error(_dict(details, "error"))
        code = cause.code if cause.code is not RealtimeErrorCode.BAD_REQUEST else RealtimeErrorCode.SERVER_ERROR
        error = realtime_error(code, cause.provider_message or "the response failed", provider_code=cause.provider_code)
    return ResponseDone(
        response_id=_str(response, "id", ""),
        status=status,
        reason=reason,
        usage=_usage(_dict(response, "usage")),
        error=error,
    )


def _error(e: dict) -> RealtimeError:
    return _provider_error(_dict(e, "error"))


def _provider_error(raw: dict) -> RealtimeError:
    """An OpenAI error object ({type, code, message, event_id}) as a RealtimeError."""
    p_code = raw.get("code") if isinstance(raw.get("code"), str) else ""
    p_type = raw.get("type") if isinstance(raw.get("type"), str) else ""
    p_msg = raw.get("message") if isinstance(raw.get("message"), str) else ""
    cause = raw.get("event_id") if isinstance(raw.get("event_id"), str) else ""
    return realtime_error(error_code_for(p_code, p_type), p_msg, provider_code=p_code or p_type, client_event_id=cause)


def _rate_limits(e: dict) -> RateLimitsUpdated:
    raw = e.get("rate_limits")
    if not isinstance(raw, list):
        raise _Malformed("'rate_limits' must be a list")
    limits = []
    for entry in raw:
        if not isinstance(entry, dict):
            raise _Malformed("each rate limit must be an object")
        reset = entry.get("reset_seconds", 0)
        limits.append(
            RateLimit(
                name=_str(entry, "name", ""),
                limit=_int(entry, "limit", 0),
                remaining=_int(entry, "remaining", 0),
                reset_seconds=float(reset) if isinstance(reset, int | float) and not isinstance(reset, bool) else 0.0,
            )
        )
    return RateLimitsUpdated(tuple(limits))


def _session(created: bool):
    def build(e: dict) -> SessionReady:
        session = _dict(e, "session")
        return SessionReady(session_id=_str(session, "id", ""), created=created, session=session)

    return build


def _function_call_done(e: dict) -> ToolCallRequested:
    return ToolCallRequested(
        call_id=_str(e, "call_id"),
        name=_str(e, "name", ""),  # beta servers leave it out: the client names it from the output item
        arguments=_str(e, "arguments", ""),
        item_id=_str(e, "item_id", ""),
        response_id=_str(e, "response_id", ""),
    )


_DECODERS: dict[str, Any] = {
    "session.created": _session(True),
    "session.updated": _session(False),
    "response.created": lambda e: ResponseStarted(_str(_dict(e, "response"), "id", "")),
    "response.output_audio.delta": _audio_delta,
    "response.audio.delta": _audio_delta,
    "response.output_audio_transcript.delta": _transcript_delta(True),
    "response.audio_transcript.delta": _transcript_delta(True),
    "response.output_text.delta": _transcript_delta(False),
    "response.text.delta": _transcript_delta(False),
    "conversation.item.input_audio_transcription.delta": lambda e: InputTranscript(
        _str(e, "delta"), _str(e, "item_id", ""), final=False
    ),
    "conversation.item.input_audio_transcription.completed": lambda e: InputTranscript(
        _str(e, "transcript"), _str(e, "item_id", ""), final=True
    ),
    "conversation.item.input_audio_transcription.failed": lambda e: InputTranscriptFailed(
        _str(e, "item_id", ""), _provider_error(_dict(e, "error"))
    ),
    "input_audio_buffer.committed": lambda e: InputCommitted(_str(e, "item_id", "")),
    "input_audio_buffer.speech_started": lambda e: SpeechStarted(_int(e, "audio_start_ms", 0), _str(e, "item_id", "")),
    "input_audio_buffer.speech_stopped": lambda e: SpeechStopped(_int(e, "audio_end_ms", 0), _str(e, "item_id", "")),
    "response.done": _response_done,
    "response.function_call_arguments.delta": lambda e: ToolCallArgumentsDelta(
        _str(e, "call_id", ""), _str(e, "item_id", ""), _str(e, "delta")
    ),
    "response.function_call_arguments.done": _function_call_done,
    "conversation.item.truncated": lambda e: ItemTruncated(
        _str(e, "item_id"), _int(e, "content_index", 0), _int(e, "audio_end_ms")
    ),
    "rate_limits.updated": _rate_limits,
    "error": _error,
}

KNOWN_SERVER_EVENTS = frozenset(_DECODERS)


def decode(event: Any) -> ServerEvent | None:
    """One server event as a typed event; None for events the engine does not use. Never raises."""
    if not isinstance(event, dict):
        return None
    kind = event.get("type")
    build = _DECODERS.get(kind) if isinstance(kind, str) else None
    if build is None:
        return None
    try:
        return build(event)
    except _Malformed as exc:
        return realtime_error(RealtimeErrorCode.PROTOCOL, f"{kind}: {exc}", provider_code=kind)
    except Exception as exc:  # noqa: BLE001 - a provider's event must never take the session down
        return realtime_error(RealtimeErrorCode.PROTOCOL, f"{kind}: {type(exc).__name__}", provider_code=kind)


def function_call_item(event: Any) -> tuple[str, str, str] | None:
    """(item_id, call_id, name) of a function call announced by `response.output_item.added/done`, else None.

    Beta servers name the function only here, not in `response.function_call_arguments.done`.
    """
    if not isinstance(event, dict) or event.get("type") not in (
        "response.output_item.added",
        "response.output_item.done",
    ):
        return None
    item = event.get("item")
    if not isinstance(item, dict) or item.get("type") != "function_call":
        return None
    item_id, call_id, name = item.get("id", ""), item.get("call_id", ""), item.get("name", "")
    if not all(isinstance(v, str) for v in (item_id, call_id, name)) or not name:
        return None
    return item_id, call_id, name


# ---------------------------------------------------------------- session configuration


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function the model may call: JSON Schema `parameters`, as AstrBot's tools describe themselves."""

    name: str
    description: str = ""
    parameters: dict = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass(frozen=True, slots=True)
class HistoryItem:
    """One earlier turn seeded into a new session."""

    role: Literal["user", "assistant"]
    text: str


TurnDetection = Literal["ours", "server_vad", "semantic_vad"]


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """What a session is told before its first turn."""

    instructions: str = ""
    voice: str = ""
    tools: tuple[ToolSpec, ...] = ()
    turn_detection: TurnDetection = "ours"  # "ours": Live Mode's VAD commits, the model's detection is off
    input_transcription_model: str = ""  # "" = no input transcription requested
    history: tuple[HistoryItem, ...] = ()


def _event(kind: str, event_id: str = "", **fields: Any) -> dict:
    out: dict[str, Any] = {"type": kind}
    if event_id:
        out["event_id"] = event_id
    out.update(fields)
    return out


def _turn_detection(mode: TurnDetection) -> dict | None:
    return None if mode == "ours" else {"type": mode}


def encode_session_update(config: SessionConfig, *, api: Api = "ga", event_id: str = "") -> dict:
    """`session.update` with instructions, voice, tools, turn detection and 24 kHz PCM16 both ways."""
    tools = [
        {"type": "function", "name": t.name, "description": t.description, "parameters": t.parameters}
        for t in config.tools
    ]
    transcription = {"model": config.input_transcription_model} if config.input_transcription_model else None
    if api == "beta":
        session: dict[str, Any] = {
            "modalities": ["text", "audio"],
            "instructions": config.instructions,
            "input_audio_format": "pcm16",
            "output_audio_format": "pcm16",
            "turn_detection": _turn_detection(config.turn_detection),
            "tools": tools,
            "tool_choice": "auto" if tools else "none",
        }
        if config.voice:
            session["voice"] = config.voice
        if transcription:
            session["input_audio_transcription"] = transcription
        return _event("session.update", event_id, session=session)
    pcm = {"type": "audio/pcm", "rate": MODEL_RATE}
    audio_in: dict[str, Any] = {"format": pcm, "turn_detection": _turn_detection(config.turn_detection)}
    if transcription:
        audio_in["transcription"] = transcription
    audio_out: dict[str, Any] = {"format": pcm}
    if config.voice:
        audio_out["voice"] = config.voice
    session = {
        "type": "realtime",
        "output_modalities": ["audio"],
        "instructions": config.instructions,
        "audio": {"input": audio_in, "output": audio_out},
        "tools": tools,
        "tool_choice": "auto" if tools else "none",
    }
    return _event("session.update", event_id, session=session)


def encode_history_item(item: HistoryItem, *, item_id: str = "", api: Api = "ga", event_id: str = "") -> dict:
    """`conversation.item.create` of an earlier turn as text (the model hears none of its audio)."""
    if item.role == "user":
        content = [{"type": "input_text", "text": item.text}]
    else:  # GA names assistant text `output_text`, beta `text`
        content = [{"type": "output_text" if api == "ga" else "text", "text": item.text}]
    body: dict[str, Any] = {"type": "message", "role": item.role, "content": content}
    if item_id:
        body["id"] = item_id
    return _event("conversation.item.create", event_id, item=body)


def encode_user_text(text: str, *, item_id: str = "", event_id: str = "") -> dict:
    """A typed user turn (`text_input`), answered by a following `response.create`."""
    return encode_history_item(HistoryItem("user", text), item_id=item_id, event_id=event_id)


def encode_append_audio(pcm16_24k: bytes, *, event_id: str = "") -> dict:
    return _event("input_audio_buffer.append", event_id, audio=base64.b64encode(pcm16_24k).decode("ascii"))


def encode_commit(*, event_id: str = "") -> dict:
    return _event("input_audio_buffer.commit", event_id)


def encode_clear(*, event_id: str = "") -> dict:
    return _event("input_audio_buffer.clear", event_id)


def encode_response_create(*, instructions: str = "", event_id: str = "") -> dict:
    """`response.create`; `instructions` override the session's for this one response."""
    if instructions:
        return _event("response.create", event_id, response={"instructions": instructions})
    return _event("response.create", event_id)


def encode_response_cancel(*, response_id: str = "", event_id: str = "") -> dict:
    if response_id:
        return _event("response.cancel", event_id, response_id=response_id)
    return _event("response.cancel", event_id)


def encode_truncate(item_id: str, content_index: int, audio_end_ms: int, *, event_id: str = "") -> dict:
    """`conversation.item.truncate`: the model forgets the answer's audio (and text) after `audio_end_ms`."""
    if audio_end_ms < 0:
        raise ValueError(f"audio_end_ms must be >= 0, got {audio_end_ms}")
    return _event(
        "conversation.item.truncate",
        event_id,
        item_id=item_id,
        content_index=content_index,
        audio_end_ms=int(audio_end_ms),
    )


def encode_item_delete(item_id: str, *, event_id: str = "") -> dict:
    return _event("conversation.item.delete", event_id, item_id=item_id)


def encode_tool_result(call_id: str, output: str, *, event_id: str = "") -> dict:
    """`conversation.item.create` of a `function_call_output`; the answer continues after a `response.create`."""
    item = {"type": "function_call_output", "call_id": call_id, "output": output}
    return _event("conversation.item.create", event_id, item=item)
