"""The N.E.K.O dialect (`?protocol=neko`): client `action` frames, server `type` frames.

A translator over the same engine for Project N.E.K.O's clients. The
microphone arrives as JSON arrays of int16 samples (48 kHz desktop, 16 kHz
mobile) and is resampled to the engine's 16 kHz with one streaming resampler;
speech goes back as an `audio_chunk` header followed by one binary frame of
PCM16 at 48 kHz, resampled per sentence with a streaming resampler (no seams
between chunks). Speech ids are our turn ids, so `user_activity` with the
interrupted speech id makes a client drop that turn's queued and late audio.

With server VAD (the default) the microphone stream goes to the engine's VAD,
like N.E.K.O's realtime providers. With `vad=off` a voice session is push to
talk: its audio is one utterance, answered on `end_session`.

Expression tags at the start of a sentence (`[joy] ...`, see `olv.leading_tags`)
become `emotion` frames and are removed from the streamed text.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any

import numpy as np

from ..audio.resample import StreamResampler
from ..audio.wav import wav_to_pcm16
from ..engine import events as ev
from ..errors import ErrorCode, ProtocolError
from . import Decoded, Outgoing, Reply
from .fields import NOT_ANSWERED, chat_request, dumps, frame_type, housekeeping, parse_object, shown, unknown_type
from .olv import leading_tags

NAME = "neko"
INPUT_RATE = 16000
OUTPUT_RATE = 48000
_FRAME_RATES = {480: 48000, 160: 16000}  # 10 ms frames of N.E.K.O's AudioWorklet
_VOICE_INPUTS = frozenset({"audio", "screen", "camera"})
_TEXT_INPUTS = frozenset({"text", "avatar_drop_image", "user_image"})
_IGNORED_STREAMS = frozenset({"screen", "camera", "avatar_drop_image", "user_image"})
_IGNORED_ACTIONS = frozenset(
    {"voice_input_control", "greeting_check", "capture_bridge_status", "voice_play_start", "voice_play_end",
     "screenshot_response", "avatar_interaction"}
)
_EMOTIONS = {
    **dict.fromkeys(("joy", "happy", "happiness", "smile", "laugh", "excited", "开心", "高兴"), "happy"),
    **dict.fromkeys(("sad", "sadness", "cry", "upset", "难过", "伤心"), "sad"),
    **dict.fromkeys(("anger", "angry", "mad", "annoyed", "生气"), "angry"),
    **dict.fromkeys(("surprise", "surprised", "shock", "shocked", "惊讶"), "surprised"),
    **dict.fromkeys(("neutral", "calm", "平静"), "neutral"),
}
_STATUS_CODES = {ErrorCode.UNKNOWN_MESSAGE_TYPE: "UNKNOWN_ACTION"}
_TAG = re.compile(r"\[[^\[\]\s\d][^\[\]\s]{0,23}\]")
_OPEN_TAG = re.compile(r"\[[^\[\]\s]{0,24}")
_SENTENCE_END = frozenset(".!?。！？…\n")


class TagFilter:
    """Removes sentence-initial `[tag]`s from streamed text, holding back only a possible tag."""

    def __init__(self) -> None:
        self._held = ""
        self._at_start = True  # at the start of a sentence: a tag here is not shown
        self._skip_space = False  # just after a removed tag

    def push(self, text: str) -> str:
        buf, self._held, out, i = self._held + text, "", [], 0
        while i < len(buf):
            ch = buf[i]
            if ch == "[" and self._at_start:
                if tag := _TAG.match(buf, i):
                    i, self._skip_space = tag.end(), True
                    continue
                if _OPEN_TAG.fullmatch(buf, i):  # may still become a tag: wait for more text
                    self._held = buf[i:]
                    break
            if ch.isspace() and self._skip_space:
                i += 1
                continue
            out.append(ch)
            self._skip_space = False
            if ch in _SENTENCE_END:
                self._at_start = True
            elif not ch.isspace():
                self._at_start = False
            i += 1
        return "".join(out)

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held


def int16_samples(value: Any) -> np.ndarray:
    """`stream_data.data` of an audio frame: a JSON array of signed 16-bit integers."""
    if value is None:
        raise ProtocolError(ErrorCode.MISSING_FIELD, "'data' is required (an array of int16 samples)")
    if not isinstance(value, list):
        raise ProtocolError(ErrorCode.INVALID_MESSAGE_FORMAT, "'data' must be an array of int16 samples")
    if not value:
        return np.zeros(0, dtype="<i2")
    try:
        samples = np.asarray(value)
    except (TypeError, ValueError, OverflowError):
        raise ProtocolError(ErrorCode.INVALID_AUDIO, "'data' must hold integers only") from None
    if samples.ndim != 1 or samples.dtype.kind not in "iu":
        raise ProtocolError(ErrorCode.INVALID_AUDIO, "'data' must be a flat array of integers")
    if samples.min() < -32768 or samples.max() > 32767:
        raise ProtocolError(ErrorCode.INVALID_AUDIO, "'data' samples must fit in 16 bits")
    return samples.astype("<i2")


class NekoDialect:
    name = NAME

    def __init__(self, max_text_chars: int = 4000, *, chat_default: bool = False) -> None:
        self._max_text = max_text_chars
        self._chat_default = chat_default  # a `ct=chat` socket: frames without `ct` are chat frames
        self._server_vad = True  # from SessionStarted; off: a voice session is push to talk
        self._stamp: str | None = None  # the open push-to-talk utterance
        self._utterances = 0
        self._in_rate = OUTPUT_RATE  # until a frame says otherwise: the desktop worklet's rate
        self._in: StreamResampler | None = None
        self._typed: deque[str] = deque(maxlen=8)  # typed texts: not echoed back as transcripts
        self._out_key: tuple[str, int] | None = None
        self._out: StreamResampler | None = None
        self._text_turn: str | None = None
        self._new_message = False
        self._tags = TagFilter()

    # ------------------------------------------------------------ client -> server

    def decode_binary(self, data: bytes) -> list[Decoded]:
        raise ProtocolError(ErrorCode.INVALID_MESSAGE_FORMAT, "N.E.K.O clients send audio as stream_data arrays")

    def decode_text(self, raw: str) -> list[Decoded]:
        frame = parse_object(raw, "action")
        if (chat := chat_request(frame, self._chat_default)) is not None:
            return [chat]
        match action := frame_type(frame, "action"):
            case "start_session":
                kind = frame.get("input_type", "audio")
                if not isinstance(kind, str) or (kind not in _VOICE_INPUTS and kind not in _TEXT_INPUTS):
                    raise ProtocolError(ErrorCode.INVALID_MESSAGE_FORMAT, f"invalid input_type: {shown(kind, 32)}")
                mode = "audio" if kind in _VOICE_INPUTS else "text"
                return [Reply(({"type": "session_started", "input_mode": mode},))]
            case "stream_data":
                return self._stream_data(frame)
            case "end_session" | "pause_session":
                if self._stamp is not None:  # push to talk: the utterance is complete
                    tail = self._in.flush() if self._in is not None else b""
                    stamp, self._stamp = self._stamp, None
                    return [*([ev.AppendAudio(tail)] if tail else []), ev.EndSpeaking(stamp)]
                return [ev.Interrupt()]  # the session is torn down: a reply in progress stops
            case "ping":
                return [ev.Ping()]
            case _ if action in _IGNORED_ACTIONS:
                return []
            case _:
                raise unknown_type("action", action)

    def _stream_data(self, frame: dict[str, Any]) -> list[ev.Command]:
        kind, data = frame.get("input_type"), frame.get("data")
        if not isinstance(kind, str):  # a list or object would not even be hashable below
            raise ProtocolError(ErrorCode.INVALID_MESSAGE_FORMAT, "'input_type' must be a string")
        if kind == "text":
            if data is not None and not isinstance(data, str):
                raise ProtocolError(ErrorCode.INVALID_MESSAGE_FORMAT, "'data' must be a string")
            if data is None or not data.strip():
                raise ProtocolError(ErrorCode.MISSING_FIELD, "'data' must be a non-empty string")
            if len(data) > self._max_text:
                raise ProtocolError(ErrorCode.TEXT_TOO_LONG, f"text is longer than {self._max_text} characters")
            self._typed.append(data.strip())
            return [ev.SendText(data.strip())]
        if kind == "audio":
            return self._audio_in(frame, int16_samples(data))
        if kind in _IGNORED_STREAMS:
            return []
        raise ProtocolError(ErrorCode.INVALID_MESSAGE_FORMAT, f"invalid input_type: {shown(kind, 32)}")

    def _audio_in(self, frame: dict[str, Any], samples: np.ndarray) -> list[ev.Command]:
        rate = frame.get("sample_rate")
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int) or not 8000 <= rate <= 96000):
            raise ProtocolError(ErrorCode.INVALID_AUDIO, "'sample_rate' must be an integer, 8000-96000")
        rate = rate or _FRAME_RATES.get(samples.size, self._in_rate)
        tail = b""
        if self._in is None or rate != self._in_rate:
            tail = self._in.flush() if self._in is not None else b""
            self._in, self._in_rate = StreamResampler(rate, INPUT_RATE), rate
        pcm = tail + self._in.process(samples.tobytes())
        if not pcm:
            return []
        commands: list[ev.Command] = []
        if not self._server_vad and self._stamp is None:
            self._utterances += 1
            self._stamp = f"neko-{self._utterances}"
            commands.append(ev.StartSpeaking(self._stamp))
        return [*commands, ev.AppendAudio(pcm)]

    # ------------------------------------------------------------ server -> client

    def encode(self, event: Outgoing) -> list[str | bytes]:
        if (frames := housekeeping(event)) is not None:
            return frames
        match event:
            case ev.SessionStarted(server_vad=server_vad):
                self._server_vad = server_vad
            case ev.UserTranscribed(text=text):
                if text in self._typed:  # the client already shows what it typed
                    self._typed.remove(text)
                    return []
                return [dumps({"type": "user_transcript", "text": text})]
            case ev.AgentTextDelta(turn_id=turn, text=text):
                if turn != self._text_turn:
                    self._text_turn, self._new_message, self._tags = turn, True, TagFilter()
                return self._gemini(turn, self._tags.push(text))
            case ev.SentenceStarted(text=text):
                tags, _ = leading_tags(text)
                emotion = next((_EMOTIONS[t] for t in tags if t in _EMOTIONS), None)
                return [dumps({"type": "emotion", "emotion": emotion})] if emotion else []
            case ev.SentenceAudio():
                return self._audio_out(event)
            case ev.PlaybackStopped(turn_id=turn):
                if self._out_key and self._out_key[0] == turn:
                    self._out_key, self._out = None, None
                return [dumps({"type": "user_activity", "interrupted_speech_id": turn})]
            case ev.TurnEnded(turn_id=turn, interrupted=interrupted):
                frames = []
                if turn == self._text_turn and not interrupted:
                    frames = self._gemini(turn, self._tags.flush())
                return [*frames, dumps({"type": "system", "data": "turn end"})]
            case ev.ErrorRaised(code=code, message=message, turn_id=turn):
                details = {"message": message, **({"turn_id": turn} if turn else {})}
                status = {"code": _STATUS_CODES.get(code, str(code)), "details": details}
                return [dumps({"type": "status", "message": dumps(status)})]
            case ev.Pong():
                return [dumps({"type": "pong"})]
            case ev.NothingHeard(turn_id=turn, reason=reason):  # a notice, in the status frame errors use
                details = {"message": NOT_ANSWERED[reason], "reason": reason, "turn_id": turn}
                return [dumps({"type": "status", "message": dumps({"code": "TRANSCRIPT_EMPTY", "details": details})})]
        return []

    def _gemini(self, turn: str, text: str) -> list[str | bytes]:
        if not text:
            return []
        new, self._new_message = self._new_message, False
        return [dumps({"type": "gemini_response", "text": text, "isNewMessage": new, "turn_id": turn})]

    def _audio_out(self, event: ev.SentenceAudio) -> list[str | bytes]:
        if event.audio_format == "wav":
            try:
                pcm, rate = wav_to_pcm16(event.audio)
            except ValueError:
                return []
        else:
            pcm, rate = event.audio, event.sample_rate
        key = (event.turn_id, event.seq)
        if self._out is None or self._out_key != key or self._out.in_rate != rate:
            self._out, self._out_key = StreamResampler(rate, OUTPUT_RATE), key
        out = self._out.process(pcm)
        if event.final:
            out += self._out.flush()
            self._out, self._out_key = None, None
        if not out:
            return []
        return [dumps({"type": "audio_chunk", "speech_id": event.turn_id}), out]
