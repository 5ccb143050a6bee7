"""Noise suppression (RNNoise through pyrnnoise) on real Piper speech buried in white noise,
alone and in the VAD worker, where it cleans the audio before the endpointer hears it."""

from __future__ import annotations

import asyncio
import sys
from collections import deque

import numpy as np
import pytest

from live.audio import denoise
from live.audio.denoise import FRAME, LATENCY_MS, StreamDenoiser, denoise_known_unavailable, denoise_unavailable
from live.audio.resample import resample_pcm16
from live.audio.vad import Endpointer, SileroClassifier, SpeechEnded, VadSettings
from live.config import LiveSettings
from live.engine import vad_worker
from live.engine.vad_worker import ServerVad, VadWorker

RATE = 16000
LEAD = 8000  # 0.5 s of noise alone before the speech, 0.5 s after


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """A Piper sentence (the bundled voice, sampling noise off: identical every run), 16 kHz."""
    from live.providers.models import missing_offline_packages

    if missing_offline_packages(stt=False, tts=True):
        pytest.skip("offline speech packages are not installed")
    from live.providers.piper_tts import PiperSynthesizer

    tts = PiperSynthesizer(noise_scale=0.0, noise_w_scale=0.0)
    tts.load()
    try:
        pcm = resample_pcm16(tts.synthesize("What is the weather like in the city today?"), tts.sample_rate, RATE)
    finally:
        tts.close()
    clean = np.frombuffer(pcm, "<i2").astype(np.float64)
    return np.concatenate([np.zeros(LEAD), clean, np.zeros(LEAD)])


@pytest.fixture(scope="module", autouse=True)
def rnnoise_installed():
    if denoise_unavailable() is not None:
        pytest.skip(f"noise suppression unavailable: {denoise_unavailable()[1]}")


def noisy(clean: np.ndarray, noise_rms: float, seed: int = 3) -> bytes:
    noise = np.random.default_rng(seed).standard_normal(clean.size) * noise_rms
    return np.clip(clean + noise, -32768, 32767).astype("<i2").tobytes()


def samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, "<i2").astype(np.float64)


def power_db(x: np.ndarray) -> float:
    return 10 * np.log10(np.mean(x**2) + 1e-9)


def delay_of(out: np.ndarray, clean: np.ndarray, most: int = 1600) -> int:
    """The shift (in samples) at which `out` best matches `clean`."""
    return max(range(most), key=lambda d: float(np.dot(out[d:], clean[: clean.size - d])))


@pytest.mark.parametrize("noise_rms", [300.0, 1000.0, 3000.0])  # ~-40, -30 and -20 dBFS
def test_noise_drops_and_the_speech_stays(speech, noise_rms):
    out = samples(StreamDenoiser().process(noisy(speech, noise_rms)))
    lag = delay_of(out, speech)
    assert lag <= LATENCY_MS * RATE // 1000 + 16, lag  # the latency it documents, bounded
    aligned = out[lag:]
    voiced = slice(LEAD, speech.size - LEAD)
    quiet = slice(1600, LEAD - 800)  # noise alone, after RNNoise's first frames adapted
    mix = samples(noisy(speech, noise_rms))
    snr_in = power_db(mix[voiced]) - power_db(mix[quiet])
    snr_out = power_db(aligned[voiced]) - power_db(aligned[quiet])
    assert snr_out - snr_in >= 10, (snr_in, snr_out)
    # The speech is kept: the output carries most of the clean speech, at its level.
    clean = speech[: aligned.size][voiced]
    kept = float(np.dot(aligned[voiced], clean) / np.dot(clean, clean))
    assert kept >= 0.8, kept
    assert abs(power_db(aligned[voiced]) - power_db(clean)) < 3


def test_any_chunk_size_gives_the_same_audio_and_as_many_samples(speech):
    pcm = noisy(speech, 1000.0)
    whole = StreamDenoiser().process(pcm)
    assert len(whole) == len(pcm)
    chunked = StreamDenoiser()
    rng = np.random.default_rng(11)
    out, fed, pos = b"", 0, 0
    sizes = [1, 3, 2, 320, 640, 1920, 7, 159 * 2, 161 * 2]  # odd byte counts, partial and many frames
    while pos < len(pcm):
        n = int(rng.choice(sizes))
        piece = chunked.process(pcm[pos : pos + n])
        pos += n
        fed = min(pos, len(pcm))
        out += piece
        assert len(out) == fed - fed % 2  # every whole sample in is one sample out, at once
    assert out == whole  # frame-synchronous: chunking never changes the result


def test_each_session_has_its_own_state(speech):
    loud = noisy(speech, 3000.0, seed=1)
    soft = noisy(speech[::-1].copy(), 300.0, seed=2)
    alone_loud, alone_soft = StreamDenoiser().process(loud), StreamDenoiser().process(soft)
    a, b = StreamDenoiser(), StreamDenoiser()
    got_a, got_b = b"", b""
    for i in range(0, len(loud), 1920):  # interleaved, as the VAD worker feeds its sessions
        got_a += a.process(loud[i : i + 1920])
        got_b += b.process(soft[i : i + 1920])
    assert got_a == alone_loud and got_b == alone_soft
    assert got_a != got_b


def test_pass_through_with_a_reason_when_pyrnnoise_is_missing(monkeypatch, speech):
    monkeypatch.setitem(sys.modules, "pyrnnoise", None)  # as if not installed
    monkeypatch.setattr(denoise._RNNoise, "_loaded", None)
    monkeypatch.setattr(denoise._RNNoise, "reason", None)
    monkeypatch.setattr(denoise._RNNoise, "detail", "")
    assert denoise_known_unavailable()[0] == "pyrnnoise_missing"  # without loading anything
    d = StreamDenoiser()
    assert not d.active
    assert d.reason == "pyrnnoise_missing" and "pip install pyrnnoise" in d.detail
    pcm = noisy(speech, 1000.0)
    assert d.process(pcm[:641]) == pcm[:641]  # unchanged, odd byte and all
    assert denoise_unavailable() == ("pyrnnoise_missing", d.detail)


def test_the_setting_is_off_by_default():
    assert LiveSettings.from_config({}).noise_suppression is False
    assert LiveSettings.from_config({"noise_suppression": True}).noise_suppression is True


async def _utterances(pcm: bytes, *, denoise_on: bool) -> list[SpeechEnded]:
    """Stream `pcm` through a real VAD worker (Silero) in 60 ms chunks; the utterances it ends."""
    worker = VadWorker(cycle_ms=0)
    ended: list[SpeechEnded] = []
    vad = ServerVad(worker, lambda: Endpointer(VadSettings(), SileroClassifier()), noise_suppression=denoise_on)
    stream = vad.open(lambda e: ended.append(e) if isinstance(e, SpeechEnded) else None, deque())
    try:
        for _ in range(400):
            if stream.endpointer is not None:
                break
            await asyncio.sleep(0.01)
        assert (stream.denoiser is not None) is denoise_on
        for i in range(0, len(pcm), 1920):
            stream.push(pcm[i : i + 1920])
            await asyncio.sleep(0.002)
        for _ in range(500):
            if not stream.backlog_bytes and ended:
                break
            await asyncio.sleep(0.01)
    finally:
        await worker.aclose()
    return ended


async def test_the_vad_worker_hands_on_the_denoised_utterance(speech):
    tail = np.zeros(RATE)  # a second of silence (plus noise) ends the utterance
    pcm = noisy(np.concatenate([speech, tail]), 1000.0)
    plain = await _utterances(pcm, denoise_on=False)
    cleaned = await _utterances(pcm, denoise_on=True)
    assert len(cleaned) == 1, cleaned
    utterance = samples(cleaned[0].pcm)
    # The preroll before the first word is noise alone: cleaned, it is far quieter than the input's.
    head = slice(0, 2 * FRAME)
    assert power_db(utterance[head]) < power_db(samples(pcm)[FRAME:LEAD]) - 10
    assert plain, "the plain path hears the same sentence"
    assert power_db(utterance[head]) < power_db(samples(plain[0].pcm)[head]) - 10
    assert cleaned[0].duration_ms >= 0.8 * (speech.size - 2 * LEAD) / 16


async def test_streams_past_the_cpu_budget_go_without_and_are_counted():
    # Budget for two denoised streams at the cost guessed before any audio was measured.
    worker = VadWorker(cycle_ms=0, denoise_budget_cores=2.5 * vad_worker.DENOISE_COST_GUESS)
    make = lambda: Endpointer(VadSettings(), SileroClassifier())  # noqa: E731
    try:
        a, b, c = (worker.open_stream(make, lambda _e: None, denoise=True) for _ in range(3))
        for _ in range(400):
            if all(s.endpointer is not None for s in (a, b, c)):
                break
            await asyncio.sleep(0.01)
        assert [s.denoiser is not None for s in (a, b, c)] == [True, True, False]
        assert c.denoise_refused and not a.denoise_refused
        assert worker.denoise_status()["noise_suppression_streams"] == 2
        assert worker.denoise_status()["noise_suppression_over_budget"] == 1
        a.close()  # its share is free again
        d = worker.open_stream(make, lambda _e: None, denoise=True)
        assert not d.denoise_refused
        plain = worker.open_stream(make, lambda _e: None)  # streams without the setting never count
        assert not plain.denoise_refused and worker.denoise_status()["noise_suppression_streams"] == 2
    finally:
        await worker.aclose()


async def test_the_worker_measures_what_denoising_costs(speech):
    worker = VadWorker(cycle_ms=0)
    stream = worker.open_stream(lambda: Endpointer(VadSettings(), SileroClassifier()), lambda _e: None, denoise=True)
    try:
        pcm = noisy(np.tile(speech, 3), 300.0)  # ~9 s: past the 5 s the worker wants before it trusts its figure
        for _ in range(400):
            if stream.endpointer is not None:
                break
            await asyncio.sleep(0.01)
        for i in range(0, len(pcm), 1920):
            stream.push(pcm[i : i + 1920])
            while stream.backlog_bytes > 32000:  # within the 5 s a stream may queue: nothing dropped
                await asyncio.sleep(0.01)
        for _ in range(500):
            if worker._denoise_audio_s >= len(pcm) / 32000 - 0.01:
                break
            await asyncio.sleep(0.01)
        assert stream.dropped_chunks == 0
        assert worker._denoise_audio_s == pytest.approx(len(pcm) / 32000, abs=0.01)
        cost = worker.denoise_cost
        assert cost != vad_worker.DENOISE_COST_GUESS and 0 < cost < 1  # CPU per second of audio, measured
    finally:
        await worker.aclose()
