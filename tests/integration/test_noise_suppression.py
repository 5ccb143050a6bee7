"""Noise suppression through the booted server: with the setting on, a sentence spoken in loud
white noise is found by server VAD and heard by the embedded Whisper, and the status says it is on.

Real Piper speech under -30 dBFS white noise (louder than most rooms), streamed as binary PCM16.
"""

import asyncio

import numpy as np
import pytest

from live.audio.denoise import denoise_unavailable

FRAME = 640  # 20 ms of PCM16 at 16 kHz
NOISE_RMS = 1000.0  # -30 dBFS


@pytest.fixture(autouse=True)
def rnnoise_installed():
    missing = denoise_unavailable()
    if missing is not None:
        pytest.skip(f"noise suppression unavailable: {missing[1]}")


def in_noise(pcm: bytes, lead_s: float, tail_s: float) -> bytes:
    speech = np.frombuffer(pcm, "<i2").astype(np.float64)
    audio = np.concatenate([np.zeros(int(16000 * lead_s)), speech, np.zeros(int(16000 * tail_s))])
    audio += np.random.default_rng(9).standard_normal(audio.size) * NOISE_RMS
    return np.clip(audio, -32768, 32767).astype("<i2").tobytes()


async def stream(client, pcm: bytes, realtime: float) -> None:
    for i in range(0, len(pcm), FRAME):
        await client.send_raw(pcm[i : i + FRAME])
        await asyncio.sleep(0.02 / realtime)


async def test_a_sentence_in_loud_noise_is_heard_with_noise_suppression_on(astrbot, connect, fake, say, tune):
    tune(noise_suppression=True, end_of_turn="silence", stt_provider_id="live_local_stt")
    fake.script_reply("It is sunny and warm.")
    client = await connect()
    hello = await client.until("hello")
    assert hello["data"]["server_vad"] is True
    server = astrbot.plugin().server

    async def status():
        return server.status()

    assert astrbot.call(status)["noise_suppression"] == "on"

    async def denoisers():  # this session's microphone goes through RNNoise, not around it
        streams = [c.session._vad_stream for c in server.connections.values()]
        return [s.denoiser is not None and s.denoiser.active for s in streams if s is not None]

    for _ in range(100):  # the stream's parts are built off the loop (the first import takes ~1 s)
        if astrbot.call(denoisers) == [True]:
            break
        await asyncio.sleep(0.05)
    assert astrbot.call(denoisers) == [True]
    assert astrbot.call(status)["noise_suppression_streams"] == 1
    await stream(client, in_noise(say("What is the weather like today?"), 0.8, 1.5), realtime=4)
    user = await client.until("user_msg", timeout=60)
    words = user["data"]["text"].lower()
    assert "weather" in words and "today" in words, words
    await client.until("end", turn=user["turn"], timeout=60)
    vad = [f["data"]["state"] for f in client.frames if f["t"] == "vad"]
    assert vad == ["speech_start", "speech_end"]  # one utterance: the noise around it is not speech


async def test_the_status_says_off_by_default(astrbot):
    server = astrbot.plugin().server

    async def status():
        return server.status()

    got = astrbot.call(status)
    assert got["noise_suppression"] == "off" and got["noise_suppression_reason"] is None
