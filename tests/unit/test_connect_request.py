"""The connect request: every query parameter of the live socket, read once."""

import pytest

from live.config import LiveSettings
from live.engine.speech import OutputFormat
from live.errors import ErrorCode, ProtocolError
from live.transport.request import ConnectRequest

DIALECTS = ("astrbot", "olv", "neko")


def parse(**query):
    return ConnectRequest.parse(query, LiveSettings(), DIALECTS)


def test_defaults():
    assert parse() == ConnectRequest(
        dialect="astrbot",
        chat_default=False,
        output=OutputFormat(LiveSettings().output_audio_format, LiveSettings().output_sample_rate),
        conversation_id=None,
        room=None,
        role="streamer",
        receive_audio=True,
        server_vad=True,
        reports_playback=False,
    )


@pytest.mark.parametrize(
    "query, field, value",
    [
        ({"protocol": "OLV"}, "dialect", "olv"),
        ({"ct": "chat"}, "chat_default", True),
        ({"audio_format": "pcm16", "sample_rate": "24000"}, "output", OutputFormat("pcm16", 24000)),
        ({"sample_rate": "0"}, "output", OutputFormat(LiveSettings().output_audio_format, 0)),
        ({"conversation_id": "c1"}, "conversation_id", "c1"),
        ({"session_id": "c2"}, "conversation_id", "c2"),
        ({"conversation_id": "c1", "session_id": "c2"}, "conversation_id", "c1"),
        ({"room": "stage", "role": "Bridge"}, "role", "bridge"),
        ({"role": "nonsense"}, "role", "streamer"),  # no room: the role means nothing
        ({"audio": "off"}, "receive_audio", False),
        ({"audio": "0"}, "receive_audio", False),
        ({"vad": "off"}, "server_vad", False),
        ({"vad": "client"}, "server_vad", False),
        ({"report_playback": "1"}, "reports_playback", True),
        ({"pause_play": "1"}, "pause_play", True),
        ({"pause_play": "1", "protocol": "olv"}, "pause_play", False),  # OLV has no frame to hold playback
        ({"pause_play": "true", "protocol": "neko"}, "pause_play", False),
    ],
)
def test_each_parameter(query, field, value):
    assert getattr(parse(**query), field) == value


@pytest.mark.parametrize(
    "query",
    [
        {"protocol": "klingon"},
        {"ct": "video"},
        {"audio_format": "mp3"},
        {"sample_rate": "7999"},
        {"sample_rate": "16000.5"},
        {"room": "no spaces"},
        {"room": "x" * 65},
        {"room": "stage", "role": "director"},
    ],
)
def test_refused_queries(query):
    with pytest.raises(ProtocolError) as err:
        parse(**query)
    assert err.value.code == ErrorCode.INVALID_MESSAGE_FORMAT


def test_the_refusal_speaks_the_dialect_the_query_names_when_it_can():
    assert ConnectRequest.dialect_of({"protocol": "neko", "ct": "video"}, DIALECTS) == "neko"
    assert ConnectRequest.dialect_of({"protocol": "klingon"}, DIALECTS) == "astrbot"
    assert ConnectRequest.dialect_of({}, DIALECTS) == "astrbot"
