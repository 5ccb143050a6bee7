"""Every bad input gets an error with a code, and the connection stays usable."""


import pytest

from live.config import Limits
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
