"""Golden tables for the AstrBot Live dialect: frames -> commands, events -> frames, faults -> codes."""

import base64
import json

import pytest

from live.engine import events as ev
from live.errors import ErrorCode, ProtocolError
from live.protocol import ChatReply, ChatRequest, Reply
from live.protocol.astrbot_live import FEATURES, AstrBotLiveDialect, viewer_event

PCM = b"\x01\x00\xff\x7f"


def decode(frame, **kwargs):
    return AstrBotLiveDialect(**kwargs).decode_text(frame if isinstance(frame, str) else json.dumps(frame))


def encode(event):
    return [json.loads(f) for f in AstrBotLiveDialect().encode(event)]


# ---------------------------------------------------------------- decode


@pytest.mark.parametrize(
    "frame, expected",
    [
        ({"t": "start_speaking", "stamp": "1732190000000"}, [ev.StartSpeaking("1732190000000")]),
        ({"t": "start_speaking", "stamp": 1732190000000}, [ev.StartSpeaking("1732190000000")]),
        ({"t": "speaking_part", "data": base64.b64encode(PCM).decode()}, [ev.AppendAudio(PCM)]),
        ({"t": "end_speaking", "stamp": "s1"}, [ev.EndSpeaking("s1")]),
        ({"t": "text_input", "text": "  hello  "}, [ev.SendText("hello")]),
        (
            {"t": "text_input", "message": [{"type": "plain", "text": "hel"}, {"type": "image", "url": "x"}, {"type": "plain", "text": "lo"}]},
            [ev.SendText("hello")],
        ),
        ({"t": "text_input", "text": "hi", "from_name": "Mika"}, [ev.SendText("hi", from_name="Mika")]),
        ({"t": "text_input", "text": "hi", "user": {"name": "Ren", "id": 7}}, [ev.SendText("hi", from_name="Ren")]),
        ({"t": "interrupt"}, [ev.Interrupt()]),
        ({"t": "interrupt", "turn": "3f9c", "played_ms": 1840}, [ev.Interrupt("3f9c", 1840)]),
        ({"t": "interrupt", "played_ms": 12.9}, [ev.Interrupt(None, 12)]),
        ({"t": "playback_report", "turn": "T", "played_ms": 0}, [ev.ReportPlayback("T", 0)]),
        ({"t": "mute"}, [ev.SetMuted(True)]),
        ({"t": "unmute"}, [ev.SetMuted(False)]),
        ({"t": "ping"}, [ev.Ping(None)]),
        ({"t": "ping", "data": {"n": 1}}, [ev.Ping({"n": 1})]),
        ({"t": "configure", "output_audio": {"format": "pcm16", "sample_rate": 24000}}, [ev.ConfigureOutput("pcm16", 24000)]),
        ({"t": "configure", "output_audio": {"format": "wav"}}, [ev.ConfigureOutput("wav", 0)]),
        ({"t": "configure", "output_audio": {"format": "mp3", "sample_rate": 7}}, [ev.ConfigureOutput("mp3", 7)]),  # the engine refuses
        ({"t": "set_audio", "enabled": False}, [ev.SetReceiveAudio(False)]),
        ({"ct": "live", "t": "mute"}, [ev.SetMuted(True)]),
        (
            {"t": "viewer_event", "kind": "gift", "user": {"name": "Ren", "id": "7"}, "gift": {"name": "Rocket", "count": 2}, "value": 100},
            [ev.ViewerEvent("gift", "Ren", "7", "", 100.0, "Rocket", 2, "")],
        ),
    ],
)
def test_decode_golden(frame, expected):
    assert decode(frame) == expected


def test_binary_frames_are_pcm16():
    assert AstrBotLiveDialect().decode_binary(PCM) == [ev.AppendAudio(PCM)]
    with pytest.raises(ProtocolError) as err:
        AstrBotLiveDialect().decode_binary(b"\x01\x02\x03")
    assert err.value.code == ErrorCode.INVALID_AUDIO


MISSING, FORMAT, UNKNOWN = ErrorCode.MISSING_FIELD, ErrorCode.INVALID_MESSAGE_FORMAT, ErrorCode.UNKNOWN_MESSAGE_TYPE
HUGE = "1" + "0" * 4299  # 4,300 digits: the most Python's JSON parser still reads as an integer


@pytest.mark.parametrize(
    "raw, code",
    [
        ("{not json", FORMAT),
        ("[1, 2, 3]", FORMAT),
        ('"text"', FORMAT),
        ('{"data": 1}', MISSING),
        ('{"t": ""}', MISSING),
        ('{"t": 5}', FORMAT),
        ('{"t": ["ping"]}', FORMAT),
        ('{"t": "dance"}', UNKNOWN),
        ('{"t": "\\ud800"}', UNKNOWN),  # a lone surrogate in the type: a type nobody knows
        ('{"t": "ping", "data": "\\ud800"}', FORMAT),  # elsewhere: the echo could not be sent
        # start_speaking / end_speaking stamps
        ('{"t": "start_speaking"}', MISSING),
        ('{"t": "start_speaking", "stamp": ""}', MISSING),
        ('{"t": "start_speaking", "stamp": 0}', FORMAT),
        ('{"t": "start_speaking", "stamp": -1}', FORMAT),
        ('{"t": "start_speaking", "stamp": true}', FORMAT),
        ('{"t": "start_speaking", "stamp": 1.5}', FORMAT),
        ('{"t": "start_speaking", "stamp": [1]}', FORMAT),
        ('{"t": "start_speaking", "stamp": %s}' % HUGE, FORMAT),
        ('{"t": "start_speaking", "stamp": "%s"}' % ("x" * 129), FORMAT),
        ('{"t": "end_speaking", "stamp": false}', FORMAT),
        # speaking_part
        ('{"t": "speaking_part"}', MISSING),
        ('{"t": "speaking_part", "data": ""}', MISSING),
        ('{"t": "speaking_part", "data": 5}', FORMAT),
        ('{"t": "speaking_part", "data": "%%%not-base64%%%"}', ErrorCode.INVALID_AUDIO),
        ('{"t": "speaking_part", "data": "AAAA"}', ErrorCode.INVALID_AUDIO),  # 3 bytes: odd
        # text_input: `text`, or the plain parts of `message`
        ('{"t": "text_input"}', MISSING),
        ('{"t": "text_input", "text": "  "}', MISSING),
        ('{"t": "text_input", "text": 42}', FORMAT),
        ('{"t": "text_input", "text": ["hi"]}', FORMAT),
        ('{"t": "text_input", "message": []}', MISSING),
        ('{"t": "text_input", "message": [{"type": "image"}]}', MISSING),
        ('{"t": "text_input", "message": [{"type": "plain", "text": null}]}', FORMAT),
        ('{"t": "text_input", "message": [{"type": "plain", "text": {}}]}', FORMAT),
        ('{"t": "text_input", "message": [{"type": "plain", "text": 0}]}', FORMAT),
        ('{"t": "text_input", "message": [{"type": "plain", "text": true}]}', FORMAT),
        ('{"t": "text_input", "message": [{"type": "plain", "text": []}]}', FORMAT),
        ('{"t": "text_input", "message": [{"type": "plain"}]}', FORMAT),
        ('{"t": "text_input", "message": [0]}', FORMAT),
        ('{"t": "text_input", "message": "hi"}', FORMAT),
        ('{"t": "text_input", "text": "%s"}' % ("x" * 21), ErrorCode.TEXT_TOO_LONG),
        ('{"t": "text_input", "text": "hi", "user": {"name": 5}}', FORMAT),
        # interrupt / playback_report
        ('{"t": "interrupt", "played_ms": "soon"}', FORMAT),
        ('{"t": "interrupt", "played_ms": -1}', FORMAT),
        ('{"t": "interrupt", "played_ms": true}', FORMAT),
        ('{"t": "interrupt", "turn": 5}', FORMAT),
        ('{"t": "interrupt", "turn": true}', FORMAT),
        ('{"t": "interrupt", "turn": ["T"]}', FORMAT),
        ('{"t": "interrupt", "turn": {"id": "T"}}', FORMAT),
        ('{"t": "playback_report", "turn": "T"}', MISSING),
        ('{"t": "playback_report", "turn": 5, "played_ms": 1}', FORMAT),
        ('{"t": "playback_report", "turn": false, "played_ms": 1}', FORMAT),
        # configure
        ('{"t": "configure"}', MISSING),
        ('{"t": "configure", "output_audio": "wav"}', FORMAT),
        ('{"t": "configure", "output_audio": {}}', MISSING),
        ('{"t": "configure", "output_audio": {"format": 1}}', FORMAT),
        ('{"t": "configure", "output_audio": {"format": "wav", "sample_rate": 0.5}}', FORMAT),
        ('{"t": "configure", "output_audio": {"format": "wav", "sample_rate": 16000.5}}', FORMAT),
        ('{"t": "configure", "output_audio": {"format": "wav", "sample_rate": 1e-400}}', FORMAT),
        ('{"t": "configure", "output_audio": {"format": "wav", "sample_rate": "16000"}}', FORMAT),
        ('{"t": "configure", "output_audio": {"format": "wav", "sample_rate": true}}', FORMAT),
        # set_audio
        ('{"t": "set_audio"}', MISSING),
        ('{"t": "set_audio", "enabled": 0}', FORMAT),
        # per-frame `ct`
        ('{"ct": 1, "t": "ping"}', FORMAT),
        ('{"ct": true, "t": "ping"}', FORMAT),
        ('{"ct": "video", "t": "ping"}', FORMAT),
        ('{"ct": ["chat"], "t": "ping"}', FORMAT),
        # viewer_event
        ('{"t": "viewer_event", "kind": "spam", "user": {"name": "a"}}', FORMAT),
        ('{"t": "viewer_event", "kind": "danmaku"}', MISSING),
        ('{"t": "viewer_event", "kind": "danmaku", "user": {"name": "a"}, "text": 3}', FORMAT),
        ('{"t": "viewer_event", "kind": "danmaku", "user": {"name": "a"}, "text": " "}', MISSING),
    ],
)
def test_bad_frames_raise_their_code(raw, code):
    with pytest.raises(ProtocolError) as err:
        AstrBotLiveDialect(max_text_chars=20).decode_text(raw)
    assert err.value.code == code
    assert err.value.message
    err.value.message.encode("utf-8")  # the message itself is always sendable


def test_unified_chat_frames_go_to_chat_mode_by_their_ct_or_the_sockets_default():
    bind = {"ct": "chat", "t": "bind", "session_id": "c1"}
    assert decode(bind) == [ChatRequest(bind)]
    send = {"t": "send", "message": [{"type": "plain", "text": "hi"}]}
    assert decode(send, chat_default=True) == [ChatRequest(send)]
    with pytest.raises(ProtocolError) as err:
        decode(send)  # a live socket: `send` is no live frame
    assert err.value.code == ErrorCode.UNKNOWN_MESSAGE_TYPE
    assert decode({"ct": "live", "t": "mute"}, chat_default=True) == [ev.SetMuted(True)]


def test_viewer_text_is_cut_not_refused():
    event = viewer_event({"kind": "danmaku", "user": {"name": "Mika"}, "text": "x" * 4500}, 4000)
    assert event.text == "x" * 4000
    frame = json.dumps({"t": "viewer_event", "kind": "danmaku", "user": {"name": "Mika"}, "text": "y" * 30})
    assert AstrBotLiveDialect(max_text_chars=20).decode_text(frame)[0].text == "y" * 20


# ---------------------------------------------------------------- encode


def test_hello_states_this_dialects_features():
    started = ev.SessionStarted("s1", "c1", "alice", True, "wav", 0)
    assert encode(started) == [
        {
            "t": "hello",
            "data": {
                "protocol": "astrbot-live",
                "version": 1,
                "session_id": "s1",
                "conversation_id": "c1",
                "username": "alice",
                "server_vad": True,
                "backend": "cascade",
                "input_audio": {"format": "pcm16", "sample_rate": 16000, "channels": 1},
                "output_audio": {"format": "wav", "sample_rate": None},
                "features": list(FEATURES),
            },
        }
    ]
    room = ev.RoomMembership("stage", "bridge", False)
    hello = encode(ev.SessionStarted("s1", "c1", "alice", False, "pcm16", 24000, room))[0]["data"]
    assert hello["room"] == {"name": "stage", "role": "bridge", "audio": False}
    assert hello["output_audio"] == {"format": "pcm16", "sample_rate": 24000}
    realtime = ev.SessionStarted("s1", "c1", "alice", True, "wav", 0, backend="realtime")
    assert encode(realtime)[0]["data"]["backend"] == "realtime"


@pytest.mark.parametrize(
    "event, expected",
    [
        (ev.StateChanged("thinking"), [{"t": "state", "data": {"state": "thinking"}}]),
        (ev.SpeechDetected("speech_start"), [{"t": "vad", "data": {"state": "speech_start"}}]),
        (ev.UserTranscribed("T", "hi", 5), [{"t": "user_msg", "data": {"text": "hi", "ts": 5}, "turn": "T"}]),
        (
            ev.UserTranscribed("T", "hi", 5, (ev.ViewerEvent("danmaku", "Mika", text="hi"),)),
            [{"t": "user_msg", "data": {"text": "hi", "ts": 5, "viewers": [{"name": "Mika", "kind": "danmaku", "text": "hi", "value": 0.0}]}, "turn": "T"}],
        ),
        (ev.NothingHeard("T", "echo"), [{"t": "transcript_empty", "data": {"reason": "echo"}, "turn": "T"}]),
        (ev.AgentTextDelta("T", "It's"), [{"t": "bot_delta_chunk", "data": {"text": "It's"}, "turn": "T"}]),
        (ev.SentenceStarted("T", 2, "Sunny."), [{"t": "bot_text_chunk", "data": {"text": "Sunny."}, "turn": "T", "seq": 2}]),
        (
            ev.SentenceAudio("T", 0, PCM, "pcm16", 24000, 1, "Sunny.", False),
            [{"t": "response", "data": base64.b64encode(PCM).decode(), "turn": "T", "seq": 0, "format": "pcm16",
              "sample_rate": 24000, "duration_ms": 1, "final": False}],
        ),  # fmt: skip
        (ev.BotReplied("T", "Sunny.", 9), [{"t": "bot_msg", "data": {"text": "Sunny.", "ts": 9}, "turn": "T"}]),
        (ev.PlaybackStopped("T"), [{"t": "stop_play", "turn": "T"}]),
        (ev.PlaybackPaused("T"), [{"t": "pause_play", "turn": "T"}]),
        (ev.PlaybackResumed("T"), [{"t": "resume_play", "turn": "T"}]),
        (ev.NothingHeard("T", "backchannel"), [{"t": "transcript_empty", "data": {"reason": "backchannel"}, "turn": "T"}]),
        (ev.TurnEnded("T", False, "Sunny."), [{"t": "end", "turn": "T", "data": {"interrupted": False, "text": "Sunny."}}]),
        (ev.TurnMetrics("T", {"turn_end": 9}, {"input": "text"}), [{"t": "metrics", "turn": "T", "data": {"timeline": {"turn_end": 9}, "input": "text"}}]),
        (ev.ErrorRaised(ErrorCode.STT_FAILED, "no"), [{"t": "error", "code": "STT_FAILED", "data": "no"}]),
        (ev.ErrorRaised(ErrorCode.TTS_FAILED, "no", "T"), [{"t": "error", "code": "TTS_FAILED", "data": "no", "turn": "T"}]),
        (ev.Pong("x"), [{"t": "pong", "data": "x"}]),
        (ev.OutputConfigured("pcm16", 0), [{"t": "configured", "data": {"output_audio": {"format": "pcm16", "sample_rate": None}}}]),
        (ev.ReceiveAudioConfigured(False), [{"t": "configured", "data": {"receive_audio": False}}]),
        (ev.ViewerDropped("duplicate"), [{"t": "viewer_dropped", "data": {"reason": "duplicate"}}]),
        (
            ev.RoomUpdated("stage", "listening", 3, {"streamer": 1}, ev.RoomMembership("stage", "listener", True)),
            [{"t": "room", "data": {"name": "stage", "state": "listening", "queue": 3, "members": {"streamer": 1},
                                    "you": {"role": "listener", "audio": True}}}],
        ),  # fmt: skip
        (Reply(({"t": "x"}, {"t": "y"})), [{"t": "x"}, {"t": "y"}]),
        (ChatReply({"type": "session_bound", "session_id": "c1"}), [{"ct": "chat", "type": "session_bound", "session_id": "c1"}]),
        (ChatReply({"t": "error", "code": "FORBIDDEN", "data": "no"}), [{"ct": "chat", "t": "error", "code": "FORBIDDEN", "data": "no"}]),
    ],
)
def test_encode_golden(event, expected):
    assert encode(event) == expected
