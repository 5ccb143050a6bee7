"""Golden tables for the Open-LLM-VTuber dialect: frames -> commands, events -> frames."""

import base64
import json

import numpy as np
import pytest

from live.audio.envelope import rms_envelope
from live.audio.wav import pcm16_to_wav, wav_to_pcm16
from live.engine import events as ev
from live.errors import ErrorCode, ProtocolError
from live.protocol import Reply
from live.protocol.olv import OlvDialect, float_pcm, leading_tags

SESSION = ev.SessionStarted("sess1", "conv1", "alice", True, "wav", 0)


def tone(ms: int, rate: int = 24000, level: float = 0.3) -> bytes:
    t = np.arange(rate * ms // 1000) / rate
    return (np.sin(2 * np.pi * 220 * t) * level * 32767).astype("<i2").tobytes()


def decode(dialect, frame):
    return dialect.decode_text(json.dumps(frame))


def encode(dialect, event):
    return [json.loads(f) for f in dialect.encode(event)]


# ---------------------------------------------------------------- decode


@pytest.mark.parametrize(
    "frame, expected",
    [
        ({"type": "text-input", "text": " hello there "}, [ev.SendText("hello there")]),
        ({"type": "text-input", "text": "with images", "images": [{"source": "camera"}]}, [ev.SendText("with images")]),
        ({"type": "mic-audio-end"}, []),  # nothing buffered: ignored (server VAD may have taken it)
        ({"type": "raw-audio-data", "audio": [0.0, 0.5, -1.0]}, [ev.AppendAudio(float_pcm([0.0, 0.5, -1.0]))]),
        ({"type": "raw-audio-data", "audio": []}, []),
        ({"type": "interrupt-signal", "text": "Once upon a"}, [ev.Interrupt(heard_text="Once upon a")]),
        ({"type": "interrupt-signal", "text": ""}, [ev.Interrupt(heard_text="")]),
        ({"type": "interrupt-signal"}, [ev.Interrupt()]),
        ({"type": "heartbeat"}, [Reply(({"type": "heartbeat-ack"},))]),
        ({"type": "frontend-playback-complete"}, []),
        ({"type": "audio-play-start", "display_text": {"text": "x"}}, []),
        ({"type": "ai-speak-signal"}, []),
        ({"type": "create-new-history"}, []),
        ({"type": "fetch-configs"}, [Reply(({"type": "config-files", "configs": []},))]),
        ({"type": "fetch-backgrounds"}, [Reply(({"type": "background-files", "files": []},))]),
        ({"type": "fetch-history-list"}, [Reply(({"type": "history-list", "histories": []},))]),
        ({"type": "fetch-and-set-history", "history_uid": "h"}, [Reply(({"type": "history-data", "messages": []},))]),
        (
            {"type": "delete-history", "history_uid": "h1"},
            [Reply(({"type": "history-deleted", "success": False, "history_uid": "h1"},))],
        ),
        ({"type": "request-group-info"}, [Reply(({"type": "group-update", "members": [], "is_owner": False},))]),
    ],
)
def test_decode_golden(frame, expected):
    assert decode(OlvDialect(), frame) == expected


@pytest.mark.parametrize(
    "raw, code",
    [
        ("not json", ErrorCode.INVALID_MESSAGE_FORMAT),
        ("[1, 2]", ErrorCode.INVALID_MESSAGE_FORMAT),
        ('{"text": "no type"}', ErrorCode.MISSING_FIELD),
        ('{"type": "warp-drive"}', ErrorCode.UNKNOWN_MESSAGE_TYPE),
        ('{"type": "text-input", "text": "   "}', ErrorCode.MISSING_FIELD),
        ('{"type": "text-input", "text": "' + "x" * 50 + '"}', ErrorCode.TEXT_TOO_LONG),
        ('{"type": "mic-audio-data", "audio": "AAAA"}', ErrorCode.INVALID_MESSAGE_FORMAT),  # a wrong type
        ('{"type": "mic-audio-data", "audio": [0.1, "loud"]}', ErrorCode.INVALID_AUDIO),
        ('{"type": "mic-audio-data", "audio": [[0.1], [0.2]]}', ErrorCode.INVALID_AUDIO),
        ('{"type": "raw-audio-data"}', ErrorCode.MISSING_FIELD),
    ],
)
def test_bad_frames_raise_protocol_errors(raw, code):
    with pytest.raises(ProtocolError) as info:
        OlvDialect(max_text_chars=20).decode_text(raw)
    assert info.value.code == code


def test_binary_frames_are_refused():
    with pytest.raises(ProtocolError):
        OlvDialect().decode_binary(b"\x00\x00")


def test_mic_audio_chunks_form_one_utterance_per_mic_audio_end():
    olv = OlvDialect()
    first = decode(olv, {"type": "mic-audio-data", "audio": [0.25] * 4096})
    assert first == [ev.StartSpeaking("olv-1"), ev.AppendAudio(float_pcm([0.25] * 4096))]
    assert decode(olv, {"type": "mic-audio-data", "audio": [0.0] * 10}) == [ev.AppendAudio(bytes(20))]
    assert decode(olv, {"type": "mic-audio-end"}) == [ev.EndSpeaking("olv-1")]
    assert decode(olv, {"type": "mic-audio-end"}) == []
    assert decode(olv, {"type": "mic-audio-data", "audio": [0.5]})[0] == ev.StartSpeaking("olv-2")


def test_float_samples_become_clipped_pcm16():
    pcm = np.frombuffer(float_pcm([0.0, 0.5, -0.5, 1.0, -1.0, 3.0, -3.0]), "<i2").tolist()
    assert pcm == [0, 16384, -16384, 32767, -32767, 32767, -32767]


@pytest.mark.parametrize(
    "text, tags, shown",
    [
        ("[joy] Nice to see you!", ["joy"], "Nice to see you!"),
        ("[Joy][wave]  Hi.", ["joy", "wave"], "Hi."),
        ("[开心] 你好。", ["开心"], "你好。"),
        ("No tags here.", [], "No tags here."),
        ("See [1] for details.", [], "See [1] for details."),
        ("[1] is a citation.", [], "[1] is a citation."),
        ("[a b] spaced", [], "[a b] spaced"),
    ],
)
def test_expression_tag_rule(text, tags, shown):
    assert leading_tags(text) == (tags, shown)


# ---------------------------------------------------------------- encode


def test_connect_sends_what_the_stock_client_expects():
    olv = OlvDialect()
    assert encode(olv, SESSION) == [
        {"type": "full-text", "text": "Connection established"},
        {"type": "set-model-and-conf", "conf_name": "AstrBot", "conf_uid": "conv1", "client_uid": "sess1"},
        {"type": "group-update", "members": [], "is_owner": False},
        {"type": "control", "text": "start-mic"},
    ]
    assert encode(olv, ev.StateChanged("listening")) == []  # the initial state: no chain to end
    answer = decode(olv, {"type": "request-init-config"})[0]
    assert encode(olv, answer) == [
        {"type": "set-model-and-conf", "conf_name": "AstrBot", "conf_uid": "conv1", "client_uid": "sess1"}
    ]


def test_a_voice_turn_golden_sequence_with_wav_output():
    olv = OlvDialect()
    encode(olv, SESSION)
    pcm = tone(100)
    wav = pcm16_to_wav(pcm, 24000)
    table = [
        (ev.StateChanged("thinking"), [{"type": "control", "text": "conversation-chain-start"}, {"type": "full-text", "text": "Thinking..."}]),
        (ev.UserTranscribed("T", "what's up", 1), [{"type": "user-input-transcription", "text": "what's up"}]),
        (ev.StateChanged("thinking"), []),
        (ev.AgentTextDelta("T", "[joy] All"), []),
        (ev.SentenceStarted("T", 0, "[joy] All good here."), []),
        (ev.StateChanged("speaking"), []),
        (
            ev.SentenceAudio("T", 0, wav, "wav", 24000, 100, "[joy] All good here."),
            [
                {
                    "type": "audio",
                    "audio": base64.b64encode(wav).decode(),
                    "volumes": [round(v, 4) for v in rms_envelope(pcm, 24000, 20)],
                    "slice_length": 20,
                    "display_text": {"text": "All good here.", "name": "AstrBot", "avatar": ""},
                    "actions": {"expressions": ["joy"]},
                    "forwarded": False,
                }
            ],
        ),
        (ev.TurnEnded("T", False, "[joy] All good here."), [{"type": "backend-synth-complete"}, {"type": "force-new-message"}]),
        (ev.TurnMetrics("T", {"turn_end": 5}), []),
        (ev.StateChanged("listening"), [{"type": "control", "text": "conversation-chain-end"}]),
    ]
    for event, expected in table:
        assert encode(olv, event) == expected, event
    audio = encode(olv, ev.SentenceAudio("T", 1, wav, "wav", 24000, 100, "x"))[0]
    assert len(audio["volumes"]) == 5 and max(audio["volumes"]) == 1.0


def test_typed_text_is_not_echoed_as_a_transcription():
    olv = OlvDialect()
    decode(olv, {"type": "text-input", "text": "hello"})
    assert encode(olv, ev.UserTranscribed("T", "hello", 1)) == []
    assert encode(olv, ev.UserTranscribed("U", "hello", 1)) == [{"type": "user-input-transcription", "text": "hello"}]


def test_pcm16_chunks_are_gathered_into_one_wav_per_sentence():
    olv = OlvDialect()
    a, b = tone(60, 16000), tone(40, 16000)
    assert encode(olv, ev.SentenceStarted("T", 0, "Hello there.")) == []
    assert encode(olv, ev.SentenceAudio("T", 0, a, "pcm16", 16000, 60, "Hello there.", final=False)) == []
    [frame] = encode(olv, ev.SentenceAudio("T", 0, b, "pcm16", 16000, 40, "Hello there.", final=True))
    assert wav_to_pcm16(base64.b64decode(frame["audio"])) == (a + b, 16000)
    assert len(frame["volumes"]) == 5 and frame["actions"] is None
    assert frame["display_text"]["text"] == "Hello there."


def test_a_sentence_without_audio_is_shown_silently():
    olv = OlvDialect()
    silent = {
        "type": "audio", "audio": None, "volumes": [], "slice_length": 20,
        "display_text": {"text": "Broken one.", "name": "AstrBot", "avatar": ""},
        "actions": None, "forwarded": False,
    }
    assert encode(olv, ev.SentenceStarted("T", 0, "Broken one.")) == []
    assert encode(olv, ev.ErrorRaised(ErrorCode.TTS_FAILED, "boom", "T")) == [
        {"type": "error", "message": "boom", "code": "TTS_FAILED"}
    ]
    assert encode(olv, ev.SentenceStarted("T", 1, "Next one.")) == [silent]
    assert encode(olv, ev.BotReplied("T", "Broken one. Next one.", 1)) == []
    assert encode(olv, ev.TurnEnded("T", False, "Broken one. Next one."))[0]["display_text"]["text"] == "Next one."


def test_barge_in_sends_control_interrupt_unless_the_client_stopped_itself():
    olv = OlvDialect()
    encode(olv, ev.StateChanged("thinking"))
    encode(olv, ev.SentenceStarted("T", 0, "Once upon a time."))
    encode(olv, ev.SentenceAudio("T", 0, tone(40, 16000), "pcm16", 16000, 40, "Once upon a time.", final=False))
    assert encode(olv, ev.PlaybackStopped("T")) == [{"type": "control", "text": "interrupt"}]
    assert encode(olv, ev.TurnEnded("T", True, "")) == []  # no synth-complete, no silent sentence
    assert encode(olv, ev.StateChanged("listening")) == [{"type": "control", "text": "conversation-chain-end"}]
    assert olv._pcm == {}
    # the client's own interrupt-signal: it already stopped, so nothing is echoed
    encode(olv, ev.StateChanged("thinking"))
    decode(olv, {"type": "interrupt-signal", "text": "Once"})
    assert encode(olv, ev.PlaybackStopped("U")) == []
    assert encode(olv, ev.PlaybackStopped("V")) == [{"type": "control", "text": "interrupt"}]


@pytest.mark.parametrize(
    "event, expected",
    [
        (ev.SpeechDetected("speech_start"), []),
        (ev.SpeechDetected("speech_end"), [{"type": "control", "text": "mic-audio-end"}]),
        (ev.NothingHeard("T", "empty_transcript"), [{"type": "full-text", "text": "Not answered: no words were heard.", "reason": "empty_transcript"}]),
        (ev.NothingHeard("T", "echo"), [{"type": "full-text", "text": "Not answered: only the character's own voice was heard.", "reason": "echo"}]),
        (ev.PlaybackPaused("T"), []),
        (ev.PlaybackResumed("T"), []),
        (ev.AgentTextDelta("T", "hi"), []),
        (ev.StateChanged("speaking"), []),
        (ev.StateChanged("listening"), []),
        (ev.OutputConfigured("wav", 0), []),
        (Reply(({"type": "heartbeat-ack"},)), [{"type": "heartbeat-ack"}]),
        (ev.ErrorRaised(ErrorCode.STT_FAILED, "no words", "T"), [{"type": "error", "message": "no words", "code": "STT_FAILED"}]),
    ],
)
def test_encode_golden(event, expected):
    assert encode(OlvDialect(), event) == expected
