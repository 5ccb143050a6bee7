"""The realtime event translator: client events built exactly, server events read in both namings, never a raise."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from live.realtime.events import (
    KNOWN_SERVER_EVENTS,
    AudioDelta,
    HistoryItem,
    InputCommitted,
    InputTranscript,
    InputTranscriptFailed,
    ItemTruncated,
    RateLimitsUpdated,
    RealtimeError,
    RealtimeErrorCode,
    ResponseDone,
    ResponseStarted,
    SessionConfig,
    SessionReady,
    SpeechStarted,
    SpeechStopped,
    ToolCallArgumentsDelta,
    ToolCallRequested,
    ToolSpec,
    TranscriptDelta,
    decode,
    encode_append_audio,
    encode_clear,
    encode_commit,
    encode_history_item,
    encode_item_delete,
    encode_response_cancel,
    encode_response_create,
    encode_session_update,
    encode_tool_result,
    encode_truncate,
    encode_user_text,
    error_code_for,
    function_call_item,
    realtime_error,
)

PCM = b"\x01\x00\xff\x7f" * 120  # 240 samples = 10 ms at 24 kHz
B64 = base64.b64encode(PCM).decode()
WEATHER = ToolSpec("get_weather", "Weather for a city", {"type": "object", "properties": {"city": {"type": "string"}}})
CONFIG = SessionConfig(
    instructions="You are Neko.",
    voice="alloy",
    tools=(WEATHER,),
    turn_detection="ours",
    input_transcription_model="whisper-1",
    history=(HistoryItem("user", "hi"), HistoryItem("assistant", "hello!")),
)

# ---------------------------------------------------------------- encoding


def test_session_update_ga_shape():
    event = encode_session_update(CONFIG, api="ga", event_id="e1")
    assert event["type"] == "session.update" and event["event_id"] == "e1"
    session = event["session"]
    assert session["type"] == "realtime"
    assert session["output_modalities"] == ["audio"]
    assert session["instructions"] == "You are Neko."
    assert session["audio"]["input"] == {
        "format": {"type": "audio/pcm", "rate": 24000},
        "turn_detection": None,  # our own VAD commits
        "transcription": {"model": "whisper-1"},
    }
    assert session["audio"]["output"] == {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy"}
    assert session["tools"] == [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": WEATHER.parameters,
        }
    ]
    assert session["tool_choice"] == "auto"
    json.dumps(event)  # serialisable as sent


def test_session_update_beta_shape():
    session = encode_session_update(SessionConfig(instructions="x", turn_detection="server_vad"), api="beta")["session"]
    assert session == {
        "modalities": ["text", "audio"],
        "instructions": "x",
        "input_audio_format": "pcm16",
        "output_audio_format": "pcm16",
        "turn_detection": {"type": "server_vad"},
        "tools": [],
        "tool_choice": "none",
    }
    assert "event_id" not in encode_session_update(SessionConfig(), api="beta")


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (encode_append_audio(PCM), {"type": "input_audio_buffer.append", "audio": B64}),
        (encode_commit(), {"type": "input_audio_buffer.commit"}),
        (encode_clear(event_id="c"), {"type": "input_audio_buffer.clear", "event_id": "c"}),
        (encode_response_create(), {"type": "response.create"}),
        (
            encode_response_create(instructions="Be brief."),
            {"type": "response.create", "response": {"instructions": "Be brief."}},
        ),
        (encode_response_cancel(), {"type": "response.cancel"}),
        (encode_response_cancel(response_id="r1"), {"type": "response.cancel", "response_id": "r1"}),
        (
            encode_truncate("item_1", 0, 1234),
            {"type": "conversation.item.truncate", "item_id": "item_1", "content_index": 0, "audio_end_ms": 1234},
        ),
        (encode_item_delete("item_2"), {"type": "conversation.item.delete", "item_id": "item_2"}),
        (
            encode_tool_result("call_1", '{"temp": 21}'),
            {
                "type": "conversation.item.create",
                "item": {"type": "function_call_output", "call_id": "call_1", "output": '{"temp": 21}'},
            },
        ),
        (
            encode_user_text("what time is it?"),
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "what time is it?"}],
                },
            },
        ),
    ],
)
def test_client_events(event, expected):
    assert event == expected


def test_history_items_name_assistant_text_per_api():
    user = encode_history_item(HistoryItem("user", "hi"), item_id="h1")
    assert user["item"] == {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "hi"}],
        "id": "h1",
    }
    ga = encode_history_item(HistoryItem("assistant", "hello"), api="ga")
    beta = encode_history_item(HistoryItem("assistant", "hello"), api="beta")
    assert ga["item"]["content"] == [{"type": "output_text", "text": "hello"}]
    assert beta["item"]["content"] == [{"type": "text", "text": "hello"}]


def test_truncate_refuses_negative_ms():
    with pytest.raises(ValueError, match="audio_end_ms"):
        encode_truncate("item", 0, -1)


# ---------------------------------------------------------------- decoding: both namings


@pytest.mark.parametrize("kind", ["response.output_audio.delta", "response.audio.delta"])
def test_audio_delta_both_names(kind):
    event = decode(
        {"type": kind, "response_id": "r", "item_id": "i", "output_index": 0, "content_index": 0, "delta": B64}
    )
    assert event == AudioDelta(pcm=PCM, response_id="r", item_id="i", content_index=0)
    assert event.duration_ms == pytest.approx(10.0)


@pytest.mark.parametrize(
    ("kind", "spoken"),
    [
        ("response.output_audio_transcript.delta", True),
        ("response.audio_transcript.delta", True),
        ("response.output_text.delta", False),
        ("response.text.delta", False),
    ],
)
def test_transcript_delta_both_names(kind, spoken):
    assert decode({"type": kind, "response_id": "r", "item_id": "i", "delta": "Hel"}) == TranscriptDelta(
        "Hel", "r", "i", spoken
    )


def test_input_transcription_delta_and_completed():
    delta = decode(
        {
            "type": "conversation.item.input_audio_transcription.delta",
            "item_id": "u1",
            "content_index": 0,
            "delta": "hel",
        }
    )
    done = decode(
        {"type": "conversation.item.input_audio_transcription.completed", "item_id": "u1", "transcript": "hello"}
    )
    assert delta == InputTranscript("hel", "u1", final=False)
    assert done == InputTranscript("hello", "u1", final=True)


def test_input_transcription_failure_keeps_the_item_and_the_reason():
    failed = decode(
        {
            "type": "conversation.item.input_audio_transcription.failed",
            "item_id": "u1",
            "content_index": 0,
            "error": {"type": "transcription_error", "code": "audio_unintelligible", "message": "no speech"},
        }
    )
    assert isinstance(failed, InputTranscriptFailed) and failed.item_id == "u1"
    assert failed.error.provider_code == "audio_unintelligible" and failed.error.provider_message == "no speech"


def test_session_response_and_buffer_events():
    assert decode({"type": "session.created", "session": {"id": "sess_1", "model": "m"}}) == SessionReady(
        "sess_1", True, {"id": "sess_1", "model": "m"}
    )
    assert decode({"type": "session.updated", "session": {"id": "sess_1"}}).created is False
    assert decode({"type": "response.created", "response": {"id": "resp_1"}}) == ResponseStarted("resp_1")
    assert decode({"type": "input_audio_buffer.committed", "item_id": "u2"}) == InputCommitted("u2")
    assert decode(
        {"type": "input_audio_buffer.speech_started", "audio_start_ms": 120, "item_id": "u3"}
    ) == SpeechStarted(120, "u3")
    assert decode({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 980}) == SpeechStopped(980, "")
    assert decode(
        {"type": "conversation.item.truncated", "item_id": "a1", "content_index": 0, "audio_end_ms": 1500}
    ) == ItemTruncated("a1", 0, 1500)


def test_response_done_with_usage_and_status():
    done = decode(
        {
            "type": "response.done",
            "response": {
                "id": "resp_9",
                "status": "cancelled",
                "status_details": {"type": "cancelled", "reason": "client_cancelled"},
                "usage": {
                    "total_tokens": 30,
                    "input_tokens": 10,
                    "output_tokens": 20,
                    "input_token_details": {"audio_tokens": 4},
                    "output_token_details": {"audio_tokens": 16},
                },
            },
        }
    )
    assert isinstance(done, ResponseDone)
    assert (done.response_id, done.status, done.reason, done.error) == ("resp_9", "cancelled", "client_cancelled", None)
    assert (done.usage.input_tokens, done.usage.output_tokens, done.usage.total_tokens) == (10, 20, 30)
    assert (done.usage.input_audio_tokens, done.usage.output_audio_tokens) == (4, 16)


def test_response_done_refusal_and_failure_carry_errors():
    refused = decode(
        {
            "type": "response.done",
            "response": {"id": "r", "status": "incomplete", "status_details": {"reason": "content_filter"}},
        }
    )
    assert refused.error is not None and refused.error.code is RealtimeErrorCode.REFUSED
    failed = decode(
        {
            "type": "response.done",
            "response": {
                "id": "r",
                "status": "failed",
                "status_details": {
                    "type": "failed",
                    "error": {"type": "rate_limit_error", "code": "rate_limit_exceeded", "message": "slow down"},
                },
            },
        }
    )
    assert failed.error.code is RealtimeErrorCode.RATE_LIMITED and failed.error.provider_message == "slow down"
    unknown_failure = decode({"type": "response.done", "response": {"id": "r", "status": "failed"}})
    assert unknown_failure.error.code is RealtimeErrorCode.SERVER_ERROR
    fine = decode(
        {
            "type": "response.done",
            "response": {"id": "r", "status": "incomplete", "status_details": {"reason": "max_output_tokens"}},
        }
    )
    assert fine.error is None and fine.reason == "max_output_tokens"


def test_function_call_events_in_both_generations():
    delta = decode(
        {"type": "response.function_call_arguments.delta", "call_id": "c1", "item_id": "f1", "delta": '{"ci'}
    )
    assert delta == ToolCallArgumentsDelta("c1", "f1", '{"ci')
    ga = decode(
        {
            "type": "response.function_call_arguments.done",
            "call_id": "c1",
            "item_id": "f1",
            "response_id": "r",
            "name": "get_weather",
            "arguments": '{"city": "Paris"}',
        }
    )
    assert ga == ToolCallRequested("c1", "get_weather", '{"city": "Paris"}', "f1", "r")
    assert ga.parsed_arguments() == {"city": "Paris"}
    beta = decode({"type": "response.function_call_arguments.done", "call_id": "c1", "item_id": "f1", "arguments": ""})
    assert beta.name == "" and beta.parsed_arguments() == {}
    added = {
        "type": "response.output_item.added",
        "item": {"id": "f1", "type": "function_call", "call_id": "c1", "name": "get_weather"},
    }
    assert function_call_item(added) == ("f1", "c1", "get_weather")
    assert function_call_item({"type": "response.output_item.added", "item": {"id": "m1", "type": "message"}}) is None
    with pytest.raises(ValueError):
        ToolCallRequested("c", "n", "[1, 2]").parsed_arguments()


def test_rate_limits():
    event = decode(
        {
            "type": "rate_limits.updated",
            "rate_limits": [
                {"name": "requests", "limit": 1000, "remaining": 999, "reset_seconds": 0.5},
                {"name": "tokens", "limit": 50000, "remaining": 100, "reset_seconds": 2},
            ],
        }
    )
    assert isinstance(event, RateLimitsUpdated)
    assert [(r.name, r.limit, r.remaining, r.reset_seconds) for r in event.limits] == [
        ("requests", 1000, 999, 0.5),
        ("tokens", 50000, 100, 2.0),
    ]


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("error", "code", "ends_session", "retryable"),
    [
        ({"type": "invalid_request_error", "code": "invalid_api_key"}, RealtimeErrorCode.AUTH_FAILED, True, False),
        ({"type": "authentication_error"}, RealtimeErrorCode.AUTH_FAILED, True, False),
        ({"type": "invalid_request_error", "code": "rate_limit_exceeded"}, RealtimeErrorCode.RATE_LIMITED, False, True),
        ({"type": "insufficient_quota", "code": "insufficient_quota"}, RealtimeErrorCode.RATE_LIMITED, False, True),
        (
            {"type": "invalid_request_error", "code": "content_policy_violation"},
            RealtimeErrorCode.REFUSED,
            False,
            False,
        ),
        ({"type": "invalid_request_error", "code": "session_expired"}, RealtimeErrorCode.SESSION_EXPIRED, True, True),
        ({"type": "server_error", "code": None}, RealtimeErrorCode.SERVER_ERROR, False, True),
        ({"type": "invalid_request_error", "code": "invalid_value"}, RealtimeErrorCode.BAD_REQUEST, False, False),
    ],
)
def test_error_mapping(error, code, ends_session, retryable):
    event = decode({"type": "error", "error": {**error, "message": "provider words", "event_id": "lm_cfg_1"}})
    assert isinstance(event, RealtimeError)
    assert event.code is code
    assert (event.ends_session, event.retryable) == (ends_session, retryable)
    assert event.provider_message == "provider words" and event.client_event_id == "lm_cfg_1"
    assert event.message and "provider words" not in event.message  # our own clear sentence


def test_every_code_has_a_distinct_clear_message():
    texts = [realtime_error(code).message for code in RealtimeErrorCode]
    assert len(set(texts)) == len(texts) and all(t.endswith(".") for t in texts)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (401, RealtimeErrorCode.AUTH_FAILED),
        (403, RealtimeErrorCode.AUTH_FAILED),
        (429, RealtimeErrorCode.RATE_LIMITED),
        (500, RealtimeErrorCode.SERVER_ERROR),
        (503, RealtimeErrorCode.SERVER_ERROR),
        (404, RealtimeErrorCode.CONNECT_FAILED),
    ],
)
def test_handshake_status_mapping(status, code):
    assert error_code_for(http_status=status) is code


# ---------------------------------------------------------------- malformed and unknown input


@pytest.mark.parametrize(
    "event",
    [
        None,
        3,
        "response.audio.delta",
        [],
        {},
        {"type": 5},
        {"type": "response.output_item.added"},
        {"type": "conversation.item.created", "item": {}},
        {"type": "made.up"},
    ],
)
def test_unknown_or_unused_events_are_none(event):
    assert decode(event) is None


@pytest.mark.parametrize(
    "event",
    [
        {"type": "response.audio.delta", "delta": "not base64!!"},
        {"type": "response.output_audio.delta"},
        {"type": "response.output_audio.delta", "delta": 12},
        {"type": "response.audio_transcript.delta", "delta": None},
        {"type": "conversation.item.truncated", "item_id": "a", "audio_end_ms": "soon"},
        {"type": "conversation.item.truncated", "item_id": "a", "audio_end_ms": True},
        {"type": "response.done", "response": "done"},
        {"type": "response.done", "response": {"status": "exploded"}},
        {"type": "rate_limits.updated", "rate_limits": {"requests": 1}},
        {"type": "rate_limits.updated", "rate_limits": ["requests"]},
        {"type": "error", "error": "boom"},
        {"type": "session.created", "session": []},
        {"type": "response.function_call_arguments.done", "arguments": "{}"},
    ],
)
def test_malformed_known_events_become_protocol_errors(event):
    decoded = decode(event)
    assert isinstance(decoded, RealtimeError)
    assert decoded.code is RealtimeErrorCode.PROTOCOL
    assert event["type"] in decoded.provider_message


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(sorted(KNOWN_SERVER_EVENTS)),
    body=st.dictionaries(
        st.sampled_from(
            [
                "delta",
                "item_id",
                "response_id",
                "response",
                "session",
                "error",
                "rate_limits",
                "transcript",
                "audio_end_ms",
                "audio_start_ms",
                "call_id",
                "arguments",
                "name",
                "content_index",
            ]
        ),
        json_values,
        max_size=6,
    ),
)
def test_decode_never_raises(kind, body):
    result = decode({**body, "type": kind})
    assert result is None or type(result).__module__ == "live.realtime.events"
