"""Error codes and close codes shared by every layer.

A `LiveError` travels to the client as an `error` frame with its `code`; the
connection stays open unless the error says otherwise.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class ErrorCode(StrEnum):
    UNAUTHORIZED = "UNAUTHORIZED"
    FORBIDDEN = "FORBIDDEN"
    BAD_USER = "BAD_USER"
    INVALID_MESSAGE_FORMAT = "INVALID_MESSAGE_FORMAT"
    UNKNOWN_MESSAGE_TYPE = "UNKNOWN_MESSAGE_TYPE"
    MISSING_FIELD = "MISSING_FIELD"
    INVALID_AUDIO = "INVALID_AUDIO"
    FRAME_TOO_LARGE = "FRAME_TOO_LARGE"
    UTTERANCE_TOO_LONG = "UTTERANCE_TOO_LONG"
    STAMP_MISMATCH = "STAMP_MISMATCH"
    NOT_SPEAKING = "NOT_SPEAKING"
    TEXT_TOO_LONG = "TEXT_TOO_LONG"
    RATE_LIMITED = "RATE_LIMITED"
    UNSUPPORTED_FORMAT = "UNSUPPORTED_FORMAT"
    UNSUPPORTED = "UNSUPPORTED"  # a request this server understands but does not offer (OLV switch-config)
    STT_NOT_CONFIGURED = "STT_NOT_CONFIGURED"
    STT_FAILED = "STT_FAILED"
    TTS_FAILED = "TTS_FAILED"
    AGENT_FAILED = "AGENT_FAILED"
    PROCESSING_ERROR = "PROCESSING_ERROR"
    NOT_AVAILABLE = "NOT_AVAILABLE"
    TOO_MANY_SESSIONS = "TOO_MANY_SESSIONS"
    TOO_MANY_ROOMS = "TOO_MANY_ROOMS"
    NOT_IN_ROOM = "NOT_IN_ROOM"
    ROOM_NOT_FOUND = "ROOM_NOT_FOUND"
    # The realtime backend: not set up, or its provider failed (the same words as live/realtime/events.py).
    REALTIME_NOT_CONFIGURED = "REALTIME_NOT_CONFIGURED"
    REALTIME_AUTH_FAILED = "REALTIME_AUTH_FAILED"
    REALTIME_RATE_LIMITED = "REALTIME_RATE_LIMITED"
    REALTIME_REFUSED = "REALTIME_REFUSED"
    REALTIME_SESSION_EXPIRED = "REALTIME_SESSION_EXPIRED"
    REALTIME_SERVER_ERROR = "REALTIME_SERVER_ERROR"
    REALTIME_BAD_REQUEST = "REALTIME_BAD_REQUEST"
    REALTIME_DISCONNECTED = "REALTIME_DISCONNECTED"
    REALTIME_CONNECT_FAILED = "REALTIME_CONNECT_FAILED"
    REALTIME_TIMEOUT = "REALTIME_TIMEOUT"


class CloseCode(IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001  # plugin unloading or AstrBot stopping
    POLICY_VIOLATION = 1008  # authentication or authorisation failed
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012  # plugin reloading: reconnect shortly
    FLOODING = 4008  # the client kept flooding after RATE_LIMITED warnings


class LiveError(Exception):
    """An error the client should hear about, with a stable code."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"LiveError({self.code.value}, {self.message!r})"


class ProtocolError(LiveError):
    """A client frame that cannot be understood; the connection survives."""


class AuthError(LiveError):
    """Credentials missing or refused; the connection closes with 1008."""
