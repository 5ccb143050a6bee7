"""Golden tables for the N.E.K.O dialect: frames -> commands, events -> frames."""

import json

import numpy as np
import pytest

from live.audio.resample import StreamResampler
from live.audio.wav import pcm16_to_wav
from live.engine import events as ev
from live.errors import ErrorCode, ProtocolError
from live.protocol.neko import NekoDialect, TagFilter, int16_samples
from live.protocol import Reply


def decode(dialect, frame):
    return dialect.decode_text(json.dumps(frame))


def encode(dialect, event):
    return [f if isinstance(f, bytes) else json.loads(f) for f in dialect.encode(event)]


def sine(seconds: float, rate: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * freq * t) * 8000).astype("<i2")


def session(server_vad: bool) -> ev.SessionStarted:
    return ev.SessionStarted("s", "c", "alice", server_vad, "wav", 0)


# ---------------------------------------------------------------- decode


@pytest.mark.parametrize(
    "frame, expected",
    [
        ({"action": "start_session", "input_type": "audio"}, [Reply(({"type": "session_started", "input_mode": "audio"},))]),
        ({"action": "start_session", "input_type": "text", "new_session": True}, [Reply(({"type": "session_started", "input_mode": "text"},))]),
        ({"action": "start_session", "input_type": "screen"}, [Reply(({"type": "session_started", "input_mode": "audio"},))]),
        ({"action": "stream_data", "input_type": "text", "data": " Hello, how are you? "}, [ev.SendText("Hello, how are you?")]),
        ({"action": "stream_data", "input_type": "audio", "data": []}, []),
        ({"action": "stream_data", "input_type": "screen", "data": "data:image/png;base64,AAAA"}, []),
        ({"action": "stream_data", "input_type": "camera", "data": "data:image/jpeg;base64,AAAA"}, []),
        ({"action": "end_session"}, [ev.Interrupt()]),
        ({"action": "end_session", "reason": "user_stop"}, [ev.Interrupt()]),
        ({"action": "pause_session"}, [ev.Interrupt()]),
        ({"action": "ping"}, [ev.Ping()]),
        ({"action": "voice_input_control", "event": "lease_sync", "owner": "core", "lease_generation": 1}, []),
        ({"action": "greeting_check", "is_switch": False, "language": "en"}, []),
        ({"action": "voice_play_start", "turnId": "T", "source": "audio_playback"}, []),
        ({"action": "voice_play_end", "turnId": "T", "source": "audio_playback"}, []),
        ({"action": "capture_bridge_status", "available": False}, []),
    ],
)
def test_decode_golden(frame, expected):
    assert decode(NekoDialect(), frame) == expected


@pytest.mark.parametrize(
    "raw, code",
    [
        ("{oops", ErrorCode.INVALID_MESSAGE_FORMAT),
        ('{"type": "ping"}', ErrorCode.MISSING_FIELD),
        ('{"action": "teleport"}', ErrorCode.UNKNOWN_MESSAGE_TYPE),
        ('{"action": "start_session", "input_type": "file"}', ErrorCode.INVALID_MESSAGE_FORMAT),
        ('{"action": "stream_data", "input_type": "smell", "data": 1}', ErrorCode.INVALID_MESSAGE_FORMAT),
        ('{"action": "stream_data", "input_type": "text", "data": ""}', ErrorCode.MISSING_FIELD),
        ('{"action": "stream_data", "input_type": "text", "data": "' + "y" * 30 + '"}', ErrorCode.TEXT_TOO_LONG),
        ('{"action": "stream_data", "input_type": "audio", "data": "AAAA"}', ErrorCode.INVALID_MESSAGE_FORMAT),  # a wrong type
        ('{"action": "stream_data", "input_type": "audio", "data": [1, 2.5]}', ErrorCode.INVALID_AUDIO),
        ('{"action": "stream_data", "input_type": "audio", "data": [1, "x"]}', ErrorCode.INVALID_AUDIO),
        ('{"action": "stream_data", "input_type": "audio", "data": [40000]}', ErrorCode.INVALID_AUDIO),
        ('{"action": "stream_data", "input_type": "audio", "data": [1], "sample_rate": 5}', ErrorCode.INVALID_AUDIO),
    ],
)
def test_bad_frames_raise_protocol_errors(raw, code):
    with pytest.raises(ProtocolError) as info:
        NekoDialect(max_text_chars=20).decode_text(raw)
    assert info.value.code == code


def test_int16_samples_accept_the_full_range():
    assert int16_samples([-32768, 0, 32767]).tolist() == [-32768, 0, 32767]


def stream(dialect, samples: np.ndarray, frame: int, **extra) -> bytes:
    out = b""
    for i in range(0, samples.size, frame):
        for command in decode(dialect, {"action": "stream_data", "input_type": "audio", "data": samples[i : i + frame].tolist(), **extra}):
            assert isinstance(command, ev.AppendAudio)
            out += command.pcm
    return out


def test_desktop_48k_frames_are_resampled_to_16k_without_seams():
    neko = NekoDialect()
    source = sine(1.0, 48000)
    got = np.frombuffer(stream(neko, source, 480), "<i2")
    reference = np.frombuffer(StreamResampler(48000, 16000).process(source.tobytes()), "<i2")
    assert abs(got.size - 16000) < 400  # the filter delay holds back a little until the end
    # chunked == one piece (to float rounding): the filter state is kept across frames, no seams
    assert np.abs(got.astype(int) - reference[: got.size]).max() <= 2
    spectrum = np.abs(np.fft.rfft(got[2000:14000].astype(float)))
    assert np.argmax(spectrum) * 16000 / 12000 == pytest.approx(440, abs=3)


def test_mobile_16k_frames_pass_through():
    neko = NekoDialect()
    source = sine(0.2, 16000)
    assert stream(neko, source, 160) == source.tobytes()


def test_an_explicit_sample_rate_wins_over_the_frame_length():
    neko = NekoDialect()
    got = stream(neko, sine(0.5, 16000), 480, sample_rate=16000)
    assert got == sine(0.5, 16000).tobytes()


def test_push_to_talk_when_server_vad_is_off():
    neko = NekoDialect()
    neko.encode(session(server_vad=False))
    decode(neko, {"action": "start_session", "input_type": "audio"})
    first = decode(neko, {"action": "stream_data", "input_type": "audio", "data": sine(0.01, 16000).tolist()})
    assert first == [ev.StartSpeaking("neko-1"), ev.AppendAudio(sine(0.01, 16000).tobytes())]
    more = decode(neko, {"action": "stream_data", "input_type": "audio", "data": [5] * 160})
    assert more == [ev.AppendAudio(np.full(160, 5, "<i2").tobytes())]
    assert decode(neko, {"action": "end_session"}) == [ev.EndSpeaking("neko-1")]
    assert decode(neko, {"action": "end_session"}) == [ev.Interrupt()]


@pytest.mark.parametrize(
    "chunks, shown",
    [
        (["[joy] Hello there."], "Hello there."),
        (["[j", "oy", "]", " Hello"], "Hello"),
        (["Fine. [sad] Bye."], "Fine. Bye."),
        (["Look at [this] thing."], "Look at [this] thing."),
        (["[1] first", " point"], "[1] first point"),
        (["[unfinished"], "[unfinished"),
        (["[an overly long tag name that never ends]"], "[an overly long tag name that never ends]"),
    ],
)
def test_tag_filter_streams(chunks, shown):
    tags = TagFilter()
    assert "".join(tags.push(c) for c in chunks) + tags.flush() == shown


# ---------------------------------------------------------------- encode


def test_a_turn_golden_sequence():
    neko = NekoDialect()
    table = [
        (session(True), []),
        (ev.StateChanged("thinking"), []),
        (ev.UserTranscribed("T", "how are you", 1), [{"type": "user_transcript", "text": "how are you"}]),
        (ev.AgentTextDelta("T", "[jo"), []),
        (ev.AgentTextDelta("T", "y] I am"), [{"type": "gemini_response", "text": "I am", "isNewMessage": True, "turn_id": "T"}]),
        (ev.AgentTextDelta("T", " fine."), [{"type": "gemini_response", "text": " fine.", "isNewMessage": False, "turn_id": "T"}]),
        (ev.SentenceStarted("T", 0, "[joy] I am fine."), [{"type": "emotion", "emotion": "happy"}]),
        (ev.SentenceStarted("T", 1, "[wave] Bye."), []),  # not an emotion N.E.K.O knows
        (ev.BotReplied("T", "I am fine.", 1), []),
        (ev.TurnEnded("T", False, "I am fine."), [{"type": "system", "data": "turn end"}]),
        (ev.TurnMetrics("T", {}), []),
        (ev.StateChanged("listening"), []),
    ]
    for event, expected in table:
        assert encode(neko, event) == expected, event
    assert encode(neko, ev.AgentTextDelta("U", "Next")) == [
        {"type": "gemini_response", "text": "Next", "isNewMessage": True, "turn_id": "U"}
    ]


def test_held_back_text_is_flushed_at_turn_end():
    neko = NekoDialect()
    assert encode(neko, ev.AgentTextDelta("T", "Done. [com")) == [
        {"type": "gemini_response", "text": "Done. ", "isNewMessage": True, "turn_id": "T"}
    ]
    assert encode(neko, ev.TurnEnded("T", False, "")) == [
        {"type": "gemini_response", "text": "[com", "isNewMessage": False, "turn_id": "T"},
        {"type": "system", "data": "turn end"},
    ]


def test_typed_text_is_not_echoed_as_a_transcript():
    neko = NekoDialect()
    decode(neko, {"action": "stream_data", "input_type": "text", "data": "hi"})
    assert encode(neko, ev.UserTranscribed("T", "hi", 1)) == []


def test_sentence_audio_goes_out_as_header_plus_48k_binary():
    neko = NekoDialect()
    pcm = sine(0.5, 24000).tobytes()
    frames = encode(neko, ev.SentenceAudio("T", 0, pcm16_to_wav(pcm, 24000), "wav", 24000, 500, "Hi."))
    assert frames[0] == {"type": "audio_chunk", "speech_id": "T"}
    assert isinstance(frames[1], bytes) and len(frames) == 2
    assert len(frames[1]) // 2 == pytest.approx(24000, abs=48)  # 0.5 s at 48 kHz, filter tail flushed


def test_pcm16_chunks_keep_one_resampler_per_sentence():
    neko = NekoDialect()
    source = sine(0.6, 24000)
    pieces = np.array_split(source, 7)
    out = b""
    for i, piece in enumerate(pieces):
        for frame in encode(neko, ev.SentenceAudio("T", 0, piece.tobytes(), "pcm16", 24000, 0, "x", final=i == 6)):
            if isinstance(frame, bytes):
                out += frame
            else:
                assert frame == {"type": "audio_chunk", "speech_id": "T"}
    reference = StreamResampler(24000, 48000)
    whole = reference.process(source.tobytes()) + reference.flush()
    got, want = np.frombuffer(out, "<i2").astype(int), np.frombuffer(whole, "<i2").astype(int)
    assert got.size == want.size and np.abs(got - want).max() <= 2  # chunk boundaries leave no trace


def test_barge_in_tells_the_client_which_speech_to_drop():
    neko = NekoDialect()
    encode(neko, ev.SentenceAudio("T", 0, sine(0.1, 24000).tobytes(), "pcm16", 24000, 100, "x", final=False))
    assert encode(neko, ev.PlaybackStopped("T")) == [{"type": "user_activity", "interrupted_speech_id": "T"}]
    assert neko._out is None
    assert encode(neko, ev.TurnEnded("T", True, "")) == [{"type": "system", "data": "turn end"}]


@pytest.mark.parametrize(
    "event, expected",
    [
        (ev.Pong(None), [{"type": "pong"}]),
        (Reply(({"type": "session_started", "input_mode": "audio"},)), [{"type": "session_started", "input_mode": "audio"}]),
        (
            ev.ErrorRaised(ErrorCode.UNKNOWN_MESSAGE_TYPE, "unknown action: x"),
            [{"type": "status", "message": json.dumps({"code": "UNKNOWN_ACTION", "details": {"message": "unknown action: x"}}, separators=(",", ":"))}],
        ),
        (
            ev.ErrorRaised(ErrorCode.STT_FAILED, "no", "T"),
            [{"type": "status", "message": json.dumps({"code": "STT_FAILED", "details": {"message": "no", "turn_id": "T"}}, separators=(",", ":"))}],
        ),
        (ev.SpeechDetected("speech_start"), []),
        (
            ev.NothingHeard("T", "echo"),
            [{"type": "status", "message": json.dumps({"code": "TRANSCRIPT_EMPTY", "details": {"message": "Not answered: only the character's own voice was heard.", "reason": "echo", "turn_id": "T"}}, separators=(",", ":"))}],
        ),
        (ev.PlaybackPaused("T"), []),
        (ev.PlaybackResumed("T"), []),
        (ev.OutputConfigured("pcm16", 48000), []),
        (ev.SentenceStarted("T", 0, "No tags."), []),
        (ev.SentenceStarted("T", 0, "[Sadness] Oh no."), [{"type": "emotion", "emotion": "sad"}]),
    ],
)
def test_encode_golden(event, expected):
    assert encode(NekoDialect(), event) == expected
