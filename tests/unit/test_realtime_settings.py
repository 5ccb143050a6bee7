"""The realtime backend's settings: the plugin config, its schema, the client settings, `?backend=`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from live.config import LiveSettings
from live.errors import ErrorCode, ProtocolError
from live.realtime.answerer import error_code, realtime_settings
from live.realtime.events import RealtimeErrorCode, realtime_error
from live.transport.request import ConnectRequest

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "_conf_schema.json").read_text(encoding="utf-8"))
DIALECTS = ("astrbot", "olv", "neko")


def test_defaults_are_the_cascade_and_an_unconfigured_realtime_provider():
    settings = LiveSettings.from_config({})
    assert settings.backend == "cascade"
    assert not settings.realtime.configured and settings.realtime.fallback is True
    assert settings.realtime.input_rate == 24000 and settings.realtime.api == "ga"


def test_the_config_is_read_and_clamped():
    settings = LiveSettings.from_config({
        "backend": "REALTIME", "realtime_url": " wss://api.example.com/v1/realtime ", "realtime_api_key": "sk-x",
        "realtime_model": "gpt-realtime", "realtime_voice": "marin", "realtime_api": "beta",
        "realtime_input_rate": 100, "realtime_transcription_model": "", "realtime_fallback": False,
        "realtime_max_session_minutes": 0,
    })  # fmt: skip
    rt = settings.realtime
    assert settings.backend == "realtime" and rt.configured and rt.url == "wss://api.example.com/v1/realtime"
    assert (rt.model, rt.voice, rt.api) == ("gpt-realtime", "marin", "beta")
    assert rt.transcription_model == "" and rt.fallback is False
    assert rt.input_rate == 8000 and rt.max_session_minutes == 1
    assert "sk-x" not in repr(settings)  # the key is never in a repr (logs)
    assert LiveSettings.from_config({"backend": "psychic", "realtime_api": "v3"}).backend == "cascade"
    assert LiveSettings.from_config({"realtime_url": "https://not-a-socket"}).realtime.configured is False


def test_every_realtime_setting_is_in_the_schema_with_a_hint():
    keys = ["backend", "realtime_url", "realtime_api_key", "realtime_model", "realtime_voice", "realtime_api",
            "realtime_input_rate", "realtime_transcription_model", "realtime_fallback",
            "realtime_max_session_minutes", "realtime_turn_detection"]  # fmt: skip
    for key in keys:
        assert key in SCHEMA and SCHEMA[key]["hint"].strip() and SCHEMA[key]["description"].strip(), key
    assert SCHEMA["backend"]["options"] == ["cascade", "realtime"] and SCHEMA["backend"]["default"] == "cascade"
    assert SCHEMA["realtime_api"]["options"] == ["ga", "beta"]
    assert SCHEMA["realtime_turn_detection"]["options"] == ["ours", "server_vad", "semantic_vad"]
    assert SCHEMA["realtime_turn_detection"]["default"] == "ours"


def test_turn_detection_is_ours_unless_the_models_is_chosen():
    assert LiveSettings.from_config({}).realtime.turn_detection == "ours"
    for mode in ("server_vad", "Semantic_VAD"):
        assert LiveSettings.from_config({"realtime_turn_detection": mode}).realtime.turn_detection == mode.lower()
    assert LiveSettings.from_config({"realtime_turn_detection": "telepathy"}).realtime.turn_detection == "ours"


def test_client_settings_follow_the_plugin_settings():
    rt = LiveSettings.from_config({
        "realtime_url": "ws://127.0.0.1:9/v1/realtime", "realtime_api_key": "k",
        "realtime_input_rate": 16000, "realtime_max_session_minutes": 10,
    }).realtime  # fmt: skip
    client = realtime_settings(rt)
    assert (client.url, client.api_key, client.input_rate) == ("ws://127.0.0.1:9/v1/realtime", "k", 16000)
    assert client.max_session_age == 600 and client.rewarm_margin == 60  # a tenth of a short limit
    assert realtime_settings(LiveSettings.from_config({"realtime_url": "wss://x"}).realtime).rewarm_margin == 120
    with pytest.raises(ValueError):
        realtime_settings(LiveSettings.from_config({}).realtime)  # no URL


def test_backend_query_parameter():
    settings = LiveSettings()
    assert ConnectRequest.parse({}, settings, DIALECTS).backend is None  # the setting decides
    assert ConnectRequest.parse({"backend": "Realtime"}, settings, DIALECTS).backend == "realtime"
    assert ConnectRequest.parse({"backend": "cascade"}, settings, DIALECTS).backend == "cascade"
    with pytest.raises(ProtocolError) as refused:
        ConnectRequest.parse({"backend": "psychic"}, settings, DIALECTS)
    assert refused.value.code is ErrorCode.INVALID_MESSAGE_FORMAT


def test_every_provider_failure_has_a_client_code():
    for code in RealtimeErrorCode:
        mapped = error_code(realtime_error(code))
        assert mapped in ErrorCode and mapped.value.startswith("REALTIME_")
    assert error_code(realtime_error(RealtimeErrorCode.PROTOCOL)) is ErrorCode.REALTIME_SERVER_ERROR
