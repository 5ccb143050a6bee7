"""Typed events between the engine and the wire dialects.

Commands (what a client asks) are imperative; events (what the engine tells)
are named as facts. Dialects translate frames to commands and events to
frames; the engine never sees JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

# ---------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True)
class StartSpeaking:
    stamp: str


@dataclass(frozen=True, slots=True)
class AppendAudio:
    """PCM16 mono 16 kHz audio: part of an explicit utterance, or the open mic stream."""

    pcm: bytes


@dataclass(frozen=True, slots=True)
class EndSpeaking:
    stamp: str


@dataclass(frozen=True, slots=True)
class SubmitUtterance:
    """A whole utterance in one piece (dialects that send audio then "end")."""

    pcm: bytes


@dataclass(frozen=True, slots=True)
class SendText:
    text: str
    from_name: str | None = None  # a bridge naming the viewer who wrote it
    viewers: tuple[ViewerEvent, ...] = ()  # set when the room's queue made this turn


@dataclass(frozen=True, slots=True)
class Interrupt:
    turn_id: str | None = None
    played_ms: int | None = None
    heard_text: str | None = None


@dataclass(frozen=True, slots=True)
class ReportPlayback:
    turn_id: str | None
    played_ms: int


@dataclass(frozen=True, slots=True)
class SetMuted:
    muted: bool


@dataclass(frozen=True, slots=True)
class Ping:
    payload: Any = None


@dataclass(frozen=True, slots=True)
class ConfigureOutput:
    audio_format: str
    sample_rate: int = 0


@dataclass(frozen=True, slots=True)
class SetReceiveAudio:
    """This client wants (or no longer wants) the answer's audio frames."""

    enabled: bool


@dataclass(frozen=True, slots=True)
class ViewerEvent:
    """Something a live-stream viewer did: a chat line, a paid message, a gift, an entry."""

    kind: Literal["danmaku", "superchat", "gift", "guard", "entry"]
    viewer_name: str
    viewer_id: str = ""
    text: str = ""  # the chat line or paid message; empty for gifts and entries
    value: float = 0.0  # money paid, in the platform's main currency unit (CNY for Bilibili); 0 = free
    gift_name: str = ""
    count: int = 1
    platform: str = ""

    @property
    def paid(self) -> bool:
        return self.value > 0


Command = (
    StartSpeaking
    | AppendAudio
    | EndSpeaking
    | SubmitUtterance
    | SendText
    | Interrupt
    | ReportPlayback
    | SetMuted
    | Ping
    | ConfigureOutput
    | SetReceiveAudio
    | ViewerEvent
)

# ---------------------------------------------------------------- events

AgentState = Literal["listening", "thinking", "speaking"]


@dataclass(frozen=True, slots=True)
class SessionStarted:
    session_id: str
    conversation_id: str
    username: str
    server_vad: bool
    output_format: str
    output_sample_rate: int
    room: RoomMembership | None = None
    backend: str = "cascade"  # what answers: "cascade" (STT, agent, TTS) or "realtime" (a speech-to-speech model)


@dataclass(frozen=True, slots=True)
class RoomMembership:
    name: str
    role: Literal["streamer", "bridge", "listener"]
    receive_audio: bool


@dataclass(frozen=True, slots=True)
class StateChanged:
    state: AgentState


@dataclass(frozen=True, slots=True)
class SpeechDetected:
    """Server VAD heard the user start (`speech_start`) or stop (`speech_end`)."""

    state: Literal["speech_start", "speech_end"]


@dataclass(frozen=True, slots=True)
class UserTranscribed:
    turn_id: str
    text: str
    ts: int
    viewers: tuple[ViewerEvent, ...] = ()


@dataclass(frozen=True, slots=True)
class NothingHeard:
    """The utterance held no words (or only the bot's own echo); no LLM call follows.

    With pause-on-speech, an utterance that paused the answer and was not meant as an
    interruption: a listener's acknowledgement (`backchannel`) or a sound too short to be
    speech (`noise`); the answer resumes.
    """

    turn_id: str
    reason: Literal["empty_transcript", "echo", "backchannel", "noise"]


@dataclass(frozen=True, slots=True)
class AgentTextDelta:
    turn_id: str
    text: str


@dataclass(frozen=True, slots=True)
class SentenceStarted:
    """The text of the sentence whose audio follows (`bot_text_chunk`)."""

    turn_id: str
    seq: int
    text: str


@dataclass(frozen=True, slots=True)
class SentenceAudio:
    """Audio of sentence `seq`: a whole WAV, or one PCM16 chunk of it."""

    turn_id: str
    seq: int
    audio: bytes
    audio_format: str
    sample_rate: int
    duration_ms: int
    text: str
    final: bool = True


@dataclass(frozen=True, slots=True)
class BotReplied:
    """The whole reply as text, sent when no audio was produced."""

    turn_id: str
    text: str
    ts: int


@dataclass(frozen=True, slots=True)
class PlaybackStopped:
    turn_id: str


@dataclass(frozen=True, slots=True)
class PlaybackPaused:
    """The user started speaking over the answer: hold its playback (queue what still arrives)."""

    turn_id: str


@dataclass(frozen=True, slots=True)
class PlaybackResumed:
    """The speech that paused the answer was not an interruption: play on from where it paused."""

    turn_id: str


@dataclass(frozen=True, slots=True)
class TurnEnded:
    turn_id: str
    interrupted: bool
    text: str
    heard: str | None = None  # interrupted: what the user heard of the answer, as history keeps it


@dataclass(frozen=True, slots=True)
class TurnMetrics:
    turn_id: str
    timeline: dict[str, int]
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ErrorRaised:
    code: str
    message: str
    turn_id: str | None = None


@dataclass(frozen=True, slots=True)
class Pong:
    payload: Any = None


@dataclass(frozen=True, slots=True)
class OutputConfigured:
    audio_format: str
    sample_rate: int


@dataclass(frozen=True, slots=True)
class ReceiveAudioConfigured:
    enabled: bool


@dataclass(frozen=True, slots=True)
class RoomUpdated:
    """A snapshot of a live room, as one member sees it."""

    name: str
    state: AgentState
    queue_length: int
    members: dict[str, int]
    you: RoomMembership


@dataclass(frozen=True, slots=True)
class ViewerDropped:
    """The room's queue let a viewer event go unanswered: refused on arrival, or (`queued`) taken in
    and later pushed out or gone stale. Told to the member that sent it; `via` names the channel of a
    sender that can no longer be told ("http", "socket"), when the notice goes to the whole room."""

    reason: Literal["duplicate", "rate_limited", "stale", "queue_full", "ignored"]
    viewer: ViewerEvent | None = None
    queued: bool = False
    via: str | None = None


Event = (
    SessionStarted
    | StateChanged
    | SpeechDetected
    | UserTranscribed
    | NothingHeard
    | AgentTextDelta
    | SentenceStarted
    | SentenceAudio
    | BotReplied
    | PlaybackStopped
    | PlaybackPaused
    | PlaybackResumed
    | TurnEnded
    | TurnMetrics
    | ErrorRaised
    | Pong
    | OutputConfigured
    | ReceiveAudioConfigured
    | RoomUpdated
    | ViewerDropped
)


def turn_of(event: Event) -> str | None:
    """The turn an event belongs to, if any."""
    return getattr(event, "turn_id", None)
