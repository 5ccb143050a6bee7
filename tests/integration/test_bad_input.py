"""Every bad input gets an error with a code, and the connection stays usable; every code is documented."""

import ast
import re
from pathlib import Path

import pytest

from live.config import Limits
from live.errors import ErrorCode
from tests.harness.live_client import LightClient
from tests.harness.audio import speech_like_pcm
from tests.harness.live_client import b64


async def still_usable(client):
    await client.send({"t": "ping", "data": "alive"})
    pong = await client.until("pong")
    assert pong["data"] == "alive"


@pytest.mark.parametrize(
    "frame, code",
    [
        ("{not json", "INVALID_MESSAGE_FORMAT"),
        ("[1, 2, 3]", "INVALID_MESSAGE_FORMAT"),
        ('{"t": "dance"}', "UNKNOWN_MESSAGE_TYPE"),
        ('{"data": 1}', "MISSING_FIELD"),
        ('{"t": "start_speaking"}', "MISSING_FIELD"),
        ('{"t": "speaking_part", "data": "%%%not-base64%%%"}', "INVALID_AUDIO"),
        ('{"t": "speaking_part", "data": "AAAA"}', "INVALID_AUDIO"),
        ('{"t": "text_input"}', "MISSING_FIELD"),
        ('{"t": "text_input", "text": 42}', "INVALID_MESSAGE_FORMAT"),  # a wrong type, not a missing field
        ('{"t": "interrupt", "played_ms": "soon"}', "INVALID_MESSAGE_FORMAT"),
        ('{"t": "end_speaking", "stamp": "x"}', "NOT_SPEAKING"),
        ('{"t": "configure", "output_audio": {"format": "mp3"}}', "UNSUPPORTED_FORMAT"),
        # found by an outside tester (issue #17): each used to pass without an error frame, or with another code
        ('{"t": "start_speaking", "stamp": 0}', "INVALID_MESSAGE_FORMAT"),
        ('{"t": "start_speaking", "stamp": -1}', "INVALID_MESSAGE_FORMAT"),
        ('{"t": "start_speaking", "stamp": true}', "INVALID_MESSAGE_FORMAT"),
        ('{"t": "start_speaking", "stamp": ""}', "MISSING_FIELD"),
        ('{"t": "start_speaking", "stamp": 1%s}' % ("0" * 4299), "INVALID_MESSAGE_FORMAT"),  # 4,300 digits
        ('{"t": "speaking_part", "data": ""}', "MISSING_FIELD"),
        ('{"t": "interrupt", "turn": 7}', "INVALID_MESSAGE_FORMAT"),
        ('{"t": "interrupt", "turn": ["T"]}', "INVALID_MESSAGE_FORMAT"),
        ('{"t": "playback_report", "turn": {"id": 1}, "played_ms": 10}', "INVALID_MESSAGE_FORMAT"),
        ('{"t": "playback_report", "turn": false, "played_ms": 10}', "INVALID_MESSAGE_FORMAT"),
        ('{"t": "configure", "output_audio": {"format": "wav", "sample_rate": 0.5}}', "INVALID_MESSAGE_FORMAT"),
        ('{"t": "configure", "output_audio": {"format": "wav", "sample_rate": 16000.5}}', "INVALID_MESSAGE_FORMAT"),
        ('{"t": "configure", "output_audio": {"format": "wav", "sample_rate": 1e-400}}', "INVALID_MESSAGE_FORMAT"),
        ('{"ct": 1, "t": "ping", "data": "x"}', "INVALID_MESSAGE_FORMAT"),
        ('{"ct": "video", "t": "ping", "data": "x"}', "INVALID_MESSAGE_FORMAT"),
        ('{"ct": null, "t": "dance"}', "UNKNOWN_MESSAGE_TYPE"),  # null: as if absent
        ('{"t": "\\ud800"}', "UNKNOWN_MESSAGE_TYPE"),  # a lone surrogate, as a JSON escape
        ('{"t": 5}', "INVALID_MESSAGE_FORMAT"),
        ('{"t": "set_audio", "enabled": "yes"}', "INVALID_MESSAGE_FORMAT"),
    ],
)
async def test_bad_frames_get_their_code(connect, frame, code):
    client = await connect()
    await client.send_raw(frame)
    error = await client.until("error")
    assert error["code"] == code
    assert error["data"]
    await still_usable(client)


async def test_odd_binary_frame_is_invalid_audio(connect):
    client = await connect()
    await client.send_raw(b"\x01\x02\x03")
    assert (await client.until("error"))["code"] == "INVALID_AUDIO"
    await still_usable(client)


async def test_wrong_stamp(connect, fake):
    client = await connect()
    await client.send({"t": "start_speaking", "stamp": "a"})
    await client.send({"t": "end_speaking", "stamp": "b"})
    assert (await client.until("error"))["code"] == "STAMP_MISMATCH"
    await still_usable(client)


@pytest.fixture
def small_limits(tune):
    tune(
        limits=Limits(max_frame_bytes=64 * 1024, max_utterance_ms=1000, max_text_chars=50,
                      max_frames_per_second=20, max_sessions_per_user=8),
    )  # fmt: skip


async def test_oversize_frame(connect, small_limits):
    client = await connect()
    await client.send_raw(b"\x00" * (70 * 1024))
    assert (await client.until("error"))["code"] == "FRAME_TOO_LARGE"
    await still_usable(client)


async def test_text_too_long(connect, small_limits):
    client = await connect()
    await client.send({"t": "text_input", "text": "x" * 51})
    assert (await client.until("error"))["code"] == "TEXT_TOO_LONG"
    await still_usable(client)


async def test_utterance_past_the_maximum_is_capped_and_still_answered(connect, fake, small_limits):
    fake.script_transcript("a long question")
    client = await connect()
    await client.send({"t": "start_speaking", "stamp": "1"})
    pcm = speech_like_pcm(1.5)
    for i in range(0, len(pcm), 8000):
        await client.send({"t": "speaking_part", "data": b64(pcm[i : i + 8000])})
    await client.send({"t": "end_speaking", "stamp": "1"})
    assert (await client.until("error"))["code"] == "UTTERANCE_TOO_LONG"
    assert (await client.until("user_msg"))["data"]["text"] == "a long question"
    assert fake.transcriptions[-1]["bytes"] <= 44 + 32000 + 100


async def test_flooding_is_rate_limited_then_disconnected(connect, small_limits):
    client = await connect()
    await client.until("state")
    for _ in range(40):
        await client.send({"t": "ping"})
    error = await client.until("error")
    assert error["code"] == "RATE_LIMITED"
    await still_usable_after_a_pause(client)
    for _ in range(300):
        try:
            await client.send({"t": "ping"})
        except Exception:
            break
    code, frames = await client.closed()
    assert code == 4008
    assert any(f.get("code") == "RATE_LIMITED" and "disconnecting" in f.get("data", "") for f in client.frames)


async def still_usable_after_a_pause(client):
    import asyncio

    await asyncio.sleep(1.2)  # the bucket refills; the connection was never dropped
    await client.drain(0.2)
    await still_usable(client)


@pytest.mark.parametrize("text", [None, {}, 0, True, [], 1.5])
async def test_text_input_whose_message_text_is_no_string_is_refused_and_reaches_no_llm(connect, fake, text):
    """Issue #17: `{"type": "plain", "text": null}` used to start a turn with the words "None"."""
    client = await connect()
    await client.until("hello")
    calls = len(fake.chats)
    await client.send({"t": "text_input", "message": [{"type": "plain", "text": text}]})
    error = await client.until("error")
    assert error["code"] == "INVALID_MESSAGE_FORMAT", error
    await still_usable(client)
    assert len(fake.chats) == calls
    assert not [f for f in client.frames if f.get("t") == "user_msg"]


async def test_a_long_viewer_event_is_cut_not_refused(astrbot, connect, fake):
    """Issue #17: a bridge's 4,500-character danmaku was refused with TEXT_TOO_LONG; the docs say it is cut."""
    token = astrbot.jwt("bad-input-viewer-cut")
    streamer = await connect(token=token, room="viewer-cut", audio=0)
    await streamer.until("hello")
    bridge = await connect(token=token, room="viewer-cut", role="bridge")
    await bridge.until("hello")
    fake.script_reply("Thanks, Mika!")
    await bridge.send({"t": "viewer_event", "kind": "danmaku", "user": {"name": "Mika"}, "text": "a" * 4500})
    viewers = (await streamer.until("user_msg"))["data"]["viewers"]
    assert len(viewers[0]["text"]) == 200 and viewers[0]["text"].startswith("a" * 199)  # room_max_viewer_chars, with "…"
    await still_usable(bridge)
    assert not [f for f in bridge.frames if f.get("t") in ("error", "viewer_dropped")], bridge.frames


# ---------------------------------------------------------------- the documented error table, code by code

DOC = Path(__file__).resolve().parents[2] / "docs" / "live-api.md"
TESTS = Path(__file__).resolve().parents[1]


def documented_codes() -> list[str]:
    """The first column of the table under `## Error codes` in docs/live-api.md."""
    section = DOC.read_text(encoding="utf-8").split("\n## Error codes\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([A-Z_]+)` \|", section, flags=re.MULTILINE)


# A trigger is frames sent on a fresh socket of a dialect, or a test elsewhere in the suite that
# provokes the code end to end (needing a fault, a setting or a second user) and asserts it.
FRAME_TRIGGERS: dict[str, tuple[str, list[str | bytes]]] = {
    "INVALID_MESSAGE_FORMAT": ("astrbot", ['{"t": "text_input", "text": 42}']),
    "MISSING_FIELD": ("astrbot", ['{"t": "start_speaking", "stamp": ""}']),
    "UNKNOWN_MESSAGE_TYPE": ("astrbot", ['{"t": "dance"}']),
    "INVALID_AUDIO": ("astrbot", [b"\x01\x02\x03"]),
    "STAMP_MISMATCH": ("astrbot", ['{"t": "start_speaking", "stamp": "a"}', '{"t": "end_speaking", "stamp": "b"}']),
    "NOT_SPEAKING": ("astrbot", ['{"t": "end_speaking", "stamp": "x"}']),
    "TEXT_TOO_LONG": ("astrbot", ['{"t": "text_input", "text": "%s"}' % ("x" * 4001)]),
    "UNSUPPORTED_FORMAT": ("astrbot", ['{"t": "configure", "output_audio": {"format": "mp3"}}']),
    "NOT_IN_ROOM": ("astrbot", ['{"t": "viewer_event", "kind": "danmaku", "user": {"name": "A"}, "text": "hi"}']),
    "UNSUPPORTED": ("olv", ['{"type": "switch-config", "file": "other.yaml"}']),
}
ELSEWHERE: dict[str, str] = {
    "UNAUTHORIZED": "integration/test_auth_and_chat.py::test_refusals",
    "BAD_USER": "integration/test_auth_and_chat.py::test_refusals",
    "FORBIDDEN": "integration/test_auth_and_chat.py::test_another_users_conversation_is_forbidden",
    "TOO_MANY_SESSIONS": "integration/test_auth_matrix.py::test_sessions_per_user_are_capped",
    "TOO_MANY_ROOMS": "integration/test_rooms.py::test_rooms_per_user_are_limited",
    "ROOM_NOT_FOUND": "integration/test_rooms.py::test_http_ingestion_needs_credentials_and_an_open_room",
    "FRAME_TOO_LARGE": "integration/test_bad_input.py::test_oversize_frame",
    "UTTERANCE_TOO_LONG": "integration/test_bad_input.py::test_utterance_past_the_maximum_is_capped_and_still_answered",
    "RATE_LIMITED": "integration/test_bad_input.py::test_flooding_is_rate_limited_then_disconnected",
    "STT_NOT_CONFIGURED": "integration/test_turns.py::test_no_stt_provider_gives_a_clear_error_and_the_session_stays_open",
    "STT_FAILED": "integration/test_faults.py::test_stt_error",
    "TTS_FAILED": "integration/test_faults.py::test_tts_error",
    "AGENT_FAILED": "integration/test_faults.py::test_llm_error_mid_stream",
    "PROCESSING_ERROR": "integration/test_barge_in.py::test_busy_policy_reject_answers_processing_error",
    "NOT_AVAILABLE": "integration/test_faults.py::test_plugin_reload_tells_every_client_why",
    **{
        code: f"integration/test_realtime_backend.py::{test}"
        for code, test in (
            ("REALTIME_NOT_CONFIGURED", "test_backend_query_is_checked"),
            ("REALTIME_AUTH_FAILED", "test_a_bad_key_is_a_coded_error_and_the_cascade_answers_the_turn"),
            ("REALTIME_RATE_LIMITED", "test_a_rate_limit_is_coded_and_answered_by_the_cascade"),
            ("REALTIME_DISCONNECTED", "test_a_drop_mid_answer_keeps_what_was_said_and_tells_the_code"),
            *((code, "test_provider_failures_reach_the_client_coded") for code in (
                "REALTIME_REFUSED", "REALTIME_SERVER_ERROR", "REALTIME_BAD_REQUEST", "REALTIME_SESSION_EXPIRED",
                "REALTIME_TIMEOUT", "REALTIME_CONNECT_FAILED")),
        )
    },
}


def test_the_error_table_and_the_server_list_the_same_codes_once():
    codes = documented_codes()
    assert len(codes) == len(set(codes)), f"listed twice: {sorted(c for c in codes if codes.count(c) > 1)}"
    assert set(codes) == {c.value for c in ErrorCode}, (
        f"documented only: {sorted(set(codes) - {c.value for c in ErrorCode})}; "
        f"undocumented: {sorted({c.value for c in ErrorCode} - set(codes))}"
    )
    assert set(FRAME_TRIGGERS) | set(ELSEWHERE) == set(codes), "every documented code has one trigger"
    assert not set(FRAME_TRIGGERS) & set(ELSEWHERE)


@pytest.mark.parametrize("code", sorted(ELSEWHERE))
def test_codes_provoked_elsewhere_are_asserted_there(code):
    path, name = ELSEWHERE[code].split("::")
    source = (TESTS / path).read_text(encoding="utf-8")
    tree = ast.parse(source)
    test = next((n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == name), None)
    assert test is not None, f"{ELSEWHERE[code]} does not exist"
    assert f'"{code}"' in ast.get_source_segment(source, test), f"{ELSEWHERE[code]} does not assert {code}"


@pytest.mark.parametrize("code", sorted(FRAME_TRIGGERS))
async def test_each_documented_code_is_produced_by_its_trigger(astrbot, code):
    dialect, frames = FRAME_TRIGGERS[code]
    client = await LightClient.open(astrbot.ws_url(token=astrbot.jwt("error-table"), protocol=dialect), dialect)
    try:
        for frame in frames:
            await client.send_raw(frame)
        assert await client.alive(), "the connection stopped answering"
        assert client.errors == {code: 1}, client.errors
    finally:
        await client.close()
