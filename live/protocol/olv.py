"""The Open-LLM-VTuber dialect (`?protocol=olv`): JSON frames keyed by `type`.

A translator over the same engine, so OLV's web and desktop clients can talk to
AstrBot. Client audio is float32 sample arrays at 16 kHz; every sentence goes
back as one base64 WAV with a lip-sync envelope (`volumes`, one per 20 ms).

Replies to request/response frames (`heartbeat`, `fetch-configs`, ...) are a
`Reply` this dialect decodes and encodes itself: the connection queues it with
the engine's events, so it leaves in order, and the engine never sees it.

Expression tags: `[word]` tags at the start of a sentence (`[joy] Nice to see
you!`) become `actions.expressions` (lower-cased, in order) and are removed
from the displayed text. The engine never voices bracketed text.
"""

from __future__ import annotations

import base64
import re
from collections import deque
from typing import Any

import numpy as np

from ..audio.envelope import rms_envelope
from ..audio.wav import pcm16_to_wav, wav_to_pcm16
from ..engine import events as ev
from ..errors import ErrorCode, ProtocolError
from . import Decoded, Outgoing, Reply
from .fields import (
    NOT_ANSWERED,
    chat_request,
    dumps,
    frame_type,
    housekeeping,
    parse_object,
    text_of,
    unknown_type,
    viewer_of,
)

NAME = "olv"
SLICE_MS = 20
_LEADING_TAGS = re.compile(r"^\s*((?:\[[^\[\]\s\d][^\[\]\s]{0,23}\]\s*)+)")
_TAG = re.compile(r"\[([^\[\]\s]+)\]")
_IGNORED = frozenset({"frontend-playback-complete", "audio-play-start", "ai-speak-signal", "create-new-history"})


def leading_tags(text: str) -> tuple[list[str], str]:
    """`"[joy] [wave] Hi!"` -> `(["joy", "wave"], "Hi!")`; text without leading tags is unchanged."""
    match = _LEADING_TAGS.match(text)
    if not match:
        return [], text
    return [tag.lower() for tag in _TAG.findall(match.group(1))], text[match.end() :]


def float_pcm(value: Any, field: str = "audio") -> bytes:
    """A JSON array of float samples in [-1, 1] as PCM16 LE bytes."""
    if value is None:
        raise ProtocolError(ErrorCode.MISSING_FIELD, f"'{field}' is required (an array of float samples)")
    if not isinstance(value, list):
        raise ProtocolError(ErrorCode.INVALID_MESSAGE_FORMAT, f"'{field}' must be an array of float samples")
    try:
        samples = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer beyond any float
        raise ProtocolError(ErrorCode.INVALID_AUDIO, f"'{field}' must hold numbers only") from None
    if samples.ndim != 1 or not np.isfinite(samples).all():
        raise ProtocolError(ErrorCode.INVALID_AUDIO, f"'{field}' must be a flat array of finite numbers")
    return np.round(np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def control(text: str) -> dict[str, Any]:
    return {"type": "control", "text": text}


class OlvDialect:
    name = NAME

    def __init__(
        self, max_text_chars: int = 4000, character_name: str = "AstrBot", avatar: str = "", *, chat_default: bool = False
    ) -> None:
        self._max_text = max_text_chars
        self._chat_default = chat_default  # a `ct=chat` socket: frames without `ct` are chat frames
        self._character = character_name
        self._avatar = avatar
        self._stamp: str | None = None  # the utterance opened by mic-audio-data
        self._utterances = 0
        self._typed: deque[str] = deque(maxlen=8)  # typed texts: their user_msg is not echoed back
        self._client_interrupted = False  # the client stopped itself: no `control: interrupt` echo
        self._in_chain = False  # between conversation-chain-start and -end
        self._session: ev.SessionStarted | None = None
        self._pcm: dict[tuple[str, int], bytearray] = {}  # pcm16 output gathered per sentence
        self._unvoiced: tuple[str, int, str] | None = None  # a sentence still waiting for its audio

    # ------------------------------------------------------------ client -> server

    def decode_binary(self, data: bytes) -> list[Decoded]:
        raise ProtocolError(ErrorCode.INVALID_MESSAGE_FORMAT, "binary frames are not part of the OLV protocol")

    def decode_text(self, raw: str) -> list[Decoded]:
        frame = parse_object(raw, "type")
        if (chat := chat_request(frame, self._chat_default)) is not None:
            return [chat]
        match kind := frame_type(frame, "type"):
            case "text-input":
                text = text_of(frame, self._max_text)
                self._typed.append(text)
                viewer = viewer_of(frame)  # a danmaku bridge may name the viewer (`from_name`)
                return [ev.SendText(text, from_name=viewer[0] if viewer else None)]
            case "mic-audio-data":
                pcm = float_pcm(frame.get("audio"))
                if not pcm:
                    return []
                commands: list[ev.Command] = []
                if self._stamp is None:
                    self._utterances += 1
                    self._stamp = f"olv-{self._utterances}"
                    commands.append(ev.StartSpeaking(self._stamp))
                return [*commands, ev.AppendAudio(pcm)]
            case "mic-audio-end":
                if self._stamp is None:  # nothing buffered, or server VAD already took the utterance
                    return []
                stamp, self._stamp = self._stamp, None
                return [ev.EndSpeaking(stamp)]
            case "raw-audio-data":
                pcm = float_pcm(frame.get("audio"))
                return [ev.AppendAudio(pcm)] if pcm else []
            case "interrupt-signal":
                heard = frame.get("text")
                self._client_interrupted = True
                return [ev.Interrupt(heard_text=heard if isinstance(heard, str) else None)]
            case "heartbeat":
                return [Reply(({"type": "heartbeat-ack"},))]
            case _ if kind in _IGNORED:
                return []
            case _:
                frames = self._answer(kind, frame)
                if frames is None:
                    raise unknown_type("message type", kind)
                return [Reply(frames)]

    def _answer(self, kind: str, frame: dict[str, Any]) -> tuple[dict[str, Any], ...] | None:
        """Benign answers to the config, history and group messages a stock client sends."""
        match kind:
            case "fetch-configs":
                return ({"type": "config-files", "configs": []},)
            case "fetch-backgrounds":
                return ({"type": "background-files", "files": []},)
            case "request-init-config":
                return (self._model_and_conf(),)
            case "switch-config":
                # every error frame carries a code, like the engine's errors (`_frames` below)
                return ({"type": "error", "message": "switching characters is not supported here",
                         "code": ErrorCode.UNSUPPORTED.value},)  # fmt: skip
            case "fetch-history-list":
                return ({"type": "history-list", "histories": []},)
            case "fetch-and-set-history":
                return ({"type": "history-data", "messages": []},)
            case "delete-history":
                return ({"type": "history-deleted", "success": False, "history_uid": frame.get("history_uid")},)
            case "request-group-info":
                return ({"type": "group-update", "members": [], "is_owner": False},)
            case "add-client-to-group" | "remove-client-from-group":
                return ({"type": "group-operation-result", "success": False, "message": "groups are not supported"},)
        return None

    # ------------------------------------------------------------ server -> client

    def encode(self, event: Outgoing) -> list[str | bytes]:
        if (frames := housekeeping(event)) is not None:
            return frames
        return [dumps(frame) for frame in self._frames(event)]

    def _frames(self, event: ev.Event) -> list[dict[str, Any]]:
        match event:
            case ev.SessionStarted():
                self._session = event
                return [
                    {"type": "full-text", "text": "Connection established"},
                    self._model_and_conf(),
                    {"type": "group-update", "members": [], "is_owner": False},
                    control("start-mic"),
                ]
            case ev.StateChanged(state="thinking") if not self._in_chain:
                self._in_chain, self._client_interrupted = True, False
                return [control("conversation-chain-start"), {"type": "full-text", "text": "Thinking..."}]
            case ev.StateChanged(state="listening") if self._in_chain:
                self._in_chain = False
                return [control("conversation-chain-end")]
            case ev.SpeechDetected(state="speech_end"):
                return [control("mic-audio-end")]
            case ev.NothingHeard(reason=reason):  # never silent: the status line says why (`reason`: the code)
                return [{"type": "full-text", "text": NOT_ANSWERED[reason], "reason": reason}]
            case ev.UserTranscribed(text=text):
                if text in self._typed:  # the client already shows what it typed
                    self._typed.remove(text)
                    return []
                return [{"type": "user-input-transcription", "text": text}]
            case ev.SentenceStarted(turn_id=turn, seq=seq, text=text):
                frames = self._flush_unvoiced()
                self._unvoiced = (turn, seq, text)
                return frames
            case ev.SentenceAudio():
                return self._sentence_audio(event)
            case ev.PlaybackStopped(turn_id=turn):
                self._pcm = {key: buf for key, buf in self._pcm.items() if key[0] != turn}
                if self._unvoiced and self._unvoiced[0] == turn:
                    self._unvoiced = None
                if self._client_interrupted:
                    self._client_interrupted = False
                    return []
                return [control("interrupt")]
            case ev.TurnEnded(interrupted=False):
                return [*self._flush_unvoiced(), {"type": "backend-synth-complete"}, {"type": "force-new-message"}]
            case ev.ErrorRaised(code=code, message=message):
                return [{"type": "error", "message": message, "code": str(code)}]
        return []

    def _model_and_conf(self) -> dict[str, Any]:
        """No Live2D model info: the client keeps the model it has."""
        session = self._session
        return {
            "type": "set-model-and-conf",
            "conf_name": self._character,
            "conf_uid": session.conversation_id if session else "",
            "client_uid": session.session_id if session else "",
        }

    def _sentence_audio(self, event: ev.SentenceAudio) -> list[dict[str, Any]]:
        key = (event.turn_id, event.seq)
        if self._unvoiced and self._unvoiced[:2] == key:
            self._unvoiced = None
        if event.audio_format == "wav":
            wav = event.audio
            try:
                pcm, rate = wav_to_pcm16(wav)
            except ValueError:
                pcm, rate = b"", event.sample_rate
        else:  # pcm16 chunks: OLV plays one WAV per sentence, so gather until the last chunk
            self._pcm.setdefault(key, bytearray()).extend(event.audio)
            if not event.final:
                return []
            pcm, rate = bytes(self._pcm.pop(key)), event.sample_rate
            wav = pcm16_to_wav(pcm, rate)
        if not pcm:
            return [self._audio_payload(None, [], event.text)]
        audio = base64.b64encode(wav).decode("ascii")
        return [self._audio_payload(audio, rms_envelope(pcm, rate, SLICE_MS), event.text)]

    def _flush_unvoiced(self) -> list[dict[str, Any]]:
        """A sentence that got no audio (TTS failed or nothing speakable) is still shown, silently."""
        if self._unvoiced is None:
            return []
        _turn, _seq, text = self._unvoiced
        self._unvoiced = None
        return [self._audio_payload(None, [], text)]

    def _audio_payload(self, audio: str | None, volumes: list[float], text: str) -> dict[str, Any]:
        expressions, shown = leading_tags(text)
        return {
            "type": "audio",
            "audio": audio,
            "volumes": [round(v, 4) for v in volumes],
            "slice_length": SLICE_MS,
            "display_text": {"text": shown, "name": self._character, "avatar": self._avatar},
            "actions": {"expressions": expressions} if expressions else None,
            "forwarded": False,
        }
