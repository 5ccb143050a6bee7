"""The microphone as one continuous stream: the server finds the utterances.

Real speech, made offline with the bundled Piper voice and padded with silence
and noise, streamed in real time as binary PCM16 frames.
"""

import asyncio
from dataclasses import replace

import numpy as np


FRAME = 640  # 20 ms of PCM16 at 16 kHz


def noise(seconds: float, level: float = 120.0, seed: int = 7) -> bytes:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(16000 * seconds)) * level).astype("<i2").tobytes()


def with_noise(pcm: bytes, level: float = 120.0) -> bytes:
    samples = np.frombuffer(pcm, "<i2").astype(np.int32)
    samples += (np.random.default_rng(3).standard_normal(samples.size) * level).astype(np.int32)
    return np.clip(samples, -32768, 32767).astype("<i2").tobytes()


async def stream(client, pcm: bytes, realtime: float = 1.0) -> None:
    for i in range(0, len(pcm), FRAME):
        await client.send_raw(pcm[i : i + FRAME])
        await asyncio.sleep(0.02 / realtime)


async def test_a_continuous_stream_with_two_utterances_yields_two_turns(connect, fake, say):
    fake.script_transcript("first question")
    fake.script_transcript("second question")
    fake.script_reply("First answer.")
    fake.script_reply("Second answer.")
    client = await connect()
    hello = await client.until("hello")
    assert hello["data"]["server_vad"] is True
    audio = noise(0.6) + with_noise(say("What time is it now?")) + noise(2.5) + with_noise(say("And what day is it today?")) + noise(1.2)
    await stream(client, audio)
    first = await client.until("user_msg")
    second = await client.until("user_msg")
    assert [first["data"]["text"], second["data"]["text"]] == ["first question", "second question"]
    await client.until("end", turn=second["turn"])
    vad = [f["data"]["state"] for f in client.frames if f["t"] == "vad"]
    assert vad == ["speech_start", "speech_end", "speech_start", "speech_end"]
    assert len(fake.transcriptions) == 2


async def test_offline_loop_through_the_server_hears_the_words(astrbot, connect, fake, say):
    """Embedded Whisper hears real speech; embedded Piper speaks the answer."""
    plugin = astrbot.plugin()
    saved = plugin.settings

    async def offline():
        plugin.settings = replace(saved, stt_provider_id="live_local_stt", tts_provider_id="live_local_tts")

    async def restore():
        plugin.settings = saved

    astrbot.call(offline)
    try:
        fake.script_reply("It is sunny and warm.")
        client = await connect()
        await client.until("hello")
        await stream(client, noise(0.5) + with_noise(say("What is the weather like today?")) + noise(1.5), realtime=4)
        user = await client.until("user_msg", timeout=60)
        words = user["data"]["text"].lower()
        assert "weather" in words and "today" in words, words
        end = await client.until("end", turn=user["turn"], timeout=60)
        audio = [f for f in client.of_turn(user["turn"]) if f["t"] == "response"]
        assert audio and sum(f["duration_ms"] for f in audio) > 800
        assert audio[0]["sample_rate"] == 22050  # piper's voice, not the fake server's 24 kHz tone
        assert end["data"]["text"] == "It is sunny and warm."
    finally:
        astrbot.call(restore)


async def test_speaking_over_the_bot_barges_in_but_a_cough_does_not(connect, fake, say):
    story = " ".join(f"Sentence number {n} of a long and winding story." for n in range(1, 15))
    fake.script_reply(story, ttft=0.05, interval=0.03)
    client = await connect()
    await client.send({"t": "text_input", "text": "tell me a story"})
    user = await client.until("user_msg")
    await client.until("response", turn=user["turn"])
    cough = noise(0.3, level=60) + with_noise(noise(0.08, level=9000, seed=11)) + noise(0.8, level=60)
    await stream(client, cough)
    assert not any(f["t"] == "stop_play" for f in client.frames)
    fake.script_transcript("wait a moment")
    fake.script_reply("Sure, I am listening.")
    await stream(client, with_noise(say("Wait, stop for a moment please.")) + noise(1.0))
    stop = await client.until("stop_play", turn=user["turn"])
    nxt = await client.until("user_msg")
    assert nxt["data"]["text"] == "wait a moment"
    assert stop["_at"] < nxt["_at"]
