"""Semantic end of turn and the echo guard, through the booted server.

Real Piper speech streamed in real time as 20 ms binary frames over the socket; the real
smart-turn model decides at the short pause. No wall-clock asserts: the turn's metrics say
what decided it and how much silence was waited.
"""

import asyncio

import aiohttp
import pytest

from tests.integration.test_server_vad import noise, stream, with_noise

pytest.importorskip("onnxruntime")


def pause(seconds: float) -> bytes:
    return noise(seconds, seed=11)


async def model_ready(astrbot) -> None:
    """A model-mode session asked for the model at connect: wait until it is loaded (and warmed up)."""
    worker = astrbot.plugin().server.end_of_turn
    for _ in range(300):
        if worker.state in ("ready", "unavailable"):
            break
        await asyncio.sleep(0.1)
    assert worker.state == "ready", worker.reason


async def metrics_of(client, turn: str) -> dict:
    return (await client.until("metrics", turn=turn, timeout=30))["data"]


async def test_a_complete_question_ends_at_the_short_pause_decided_by_the_model(astrbot, connect, fake, say, tune):
    # A model slowed by a loaded machine must not lose to the fallback silence: what decided is the point
    # here; how soon is the turn-taking bench's.
    settings = tune(vad_silence_ms=1500)
    fake.script_transcript("what time is it now")
    fake.script_reply("It is noon.")
    client = await connect()
    await client.until("hello")
    await model_ready(astrbot)
    await stream(client, pause(0.6) + with_noise(say("What time is it now?")) + pause(1.5))
    user = await client.until("user_msg", timeout=30)
    data = await metrics_of(client, user["turn"])
    assert data["eot_mode"] == "model" and data["eot_reason"] == "model_done", data
    assert data["eot_score"] >= 0.5 and data["eot_fallback"] is None
    assert data["eot_silence_ms"] < settings.vad_silence_ms  # before the fallback silence would end it
    assert data["timeline"]["speech_end"] == 0 and data["timeline"]["eot_decided"] >= data["eot_silence_ms"] - 5
    assert len(fake.transcriptions) == 1


THINKING = "I need to, um,"
CONTINUATION = "book a table for two people tonight."


async def test_a_thinking_pause_shorter_than_the_long_limit_stays_one_turn(astrbot, connect, fake, say, tune):
    # one transcription (with answering ahead: test_speculation_server.py); a loaded machine's slow model
    # must not lose to the fallback silence
    tune(end_of_turn_speculation=False, vad_silence_ms=1500)
    fake.script_transcript("i need to um book a table for two people tonight")
    fake.script_reply("For two, tonight. Done.")
    client = await connect()
    await client.until("hello")
    await model_ready(astrbot)
    audio = pause(0.6) + with_noise(say(THINKING)) + pause(0.8) + with_noise(say(CONTINUATION)) + pause(3.0)
    await stream(client, audio)
    user = await client.until("user_msg", timeout=30)
    data = await metrics_of(client, user["turn"])
    assert data["eot_mode"] == "model" and data["eot_pauses_judged"] >= 2, data  # the 800 ms pause was judged
    await client.drain(0.5)
    assert [f["t"] for f in client.frames].count("user_msg") == 1 and len(fake.transcriptions) == 1
    vad = [f["data"]["state"] for f in client.frames if f["t"] == "vad"]
    assert vad == ["speech_start", "speech_end"]


async def test_the_same_pause_splits_the_turn_under_the_silence_rule(connect, fake, say, tune):
    tune(end_of_turn="silence")
    fake.script_transcript("i need to um")
    fake.script_transcript("book a table for two people tonight")
    fake.script_reply("Go on.")
    fake.script_reply("Done.")
    client = await connect()
    await client.until("hello")
    audio = pause(0.6) + with_noise(say(THINKING)) + pause(0.8) + with_noise(say(CONTINUATION)) + pause(1.0)
    await stream(client, audio)
    first = await client.until("user_msg", timeout=30)
    second = await client.until("user_msg", timeout=30)
    assert [first["data"]["text"], second["data"]["text"]] == ["i need to um", "book a table for two people tonight"]
    data = await metrics_of(client, second["turn"])
    assert data["eot_mode"] == "silence" and data["eot_reason"] == "silence"


async def test_health_and_status_say_how_turns_end(astrbot, connect, tune):
    client = await connect()
    await client.until("hello")
    await model_ready(astrbot)
    server = astrbot.plugin().server

    async def status():
        return server.status()

    detail = astrbot.call(status)["end_of_turn_model"]
    assert detail["state"] == "ready" and detail["reason"] is None and detail["item_ms"] > 0
    assert await health(astrbot) == {"accepting": True, "end_of_turn": "model", "end_of_turn_reason": None}
    tune(end_of_turn="silence")
    assert await health(astrbot) == {"accepting": True, "end_of_turn": "silence", "end_of_turn_reason": "setting"}


async def health(astrbot) -> dict:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{astrbot.base_url}/api/v1/live/health") as response:
            return (await response.json())["data"]


# --- the echo guard ---------------------------------------------------------------------

QUESTION = "What time is it now?"
REPEATED = "what time is it now"
LONG_ANSWER = (
    "What time is it now, you ask. It is a question sailors asked the stars for centuries. "
    "They looked up at night and counted the hours by the turning sky. "
    "Clocks came later, first on towers and then in every pocket."
)


async def test_a_repeated_question_while_nothing_plays_is_answered(connect, fake, say):
    fake.script_reply("What time is it now? Noon.")  # the character says the words first
    fake.script_transcript(REPEATED)
    fake.script_reply("Still noon.")
    client = await connect()
    await client.until("hello")
    await client.send({"t": "text_input", "text": "ask me something"})
    first = await client.until("user_msg")
    await client.until("end", turn=first["turn"])
    played = sum(f["duration_ms"] for f in client.of_turn(first["turn"]) if f["t"] == "response")
    await asyncio.sleep(played / 1000 + 1.0)  # its audio has played out
    await stream(client, pause(0.4) + with_noise(say(QUESTION)) + pause(1.0))
    second = await client.until("user_msg", timeout=30)
    assert second["data"]["text"] == REPEATED
    await client.until("end", turn=second["turn"], timeout=30)
    assert not [f for f in client.frames if f["t"] == "transcript_empty"]


async def test_the_characters_own_words_heard_while_it_plays_are_dropped_with_a_notice(connect, fake, say):
    fake.script_reply(LONG_ANSWER, ttft=0.05, interval=0.02)
    fake.script_transcript(REPEATED)  # the microphone heard the speakers
    client = await connect()
    await client.until("hello")
    await client.send({"t": "text_input", "text": "tell me about time"})
    first = await client.until("user_msg")
    await client.until("response", turn=first["turn"])
    await stream(client, pause(0.2) + with_noise(say(QUESTION)) + pause(1.0))  # while the answer plays
    notice = await client.until("transcript_empty", timeout=30)
    assert notice["data"]["reason"] == "echo"
    await client.drain(0.5)
    assert [f["t"] for f in client.frames].count("user_msg") == 1  # no turn for the echo
    assert len(fake.streams) == 1
    assert len(fake.transcriptions) == 1
