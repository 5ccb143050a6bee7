"""Fixtures for the offline speech tests: each model is loaded once per module."""

from __future__ import annotations

import pytest

from live.providers.models import OFFLINE_INSTALL_HINT, missing_offline_packages


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "speech: loads the embedded offline speech models")


def _require(stt: bool, tts: bool) -> None:
    missing = missing_offline_packages(stt=stt, tts=tts)
    if missing:
        pytest.skip(f"offline speech packages missing ({', '.join(missing)}): {OFFLINE_INSTALL_HINT}")


@pytest.fixture(scope="module")
def piper():
    """The bundled joe voice with its sampling noise off, so audio is identical every run."""
    _require(stt=False, tts=True)
    from live.providers.piper_tts import PiperSynthesizer

    tts = PiperSynthesizer(noise_scale=0.0, noise_w_scale=0.0)
    tts.load()
    yield tts
    tts.close()


@pytest.fixture(scope="module")
def whisper():
    _require(stt=True, tts=False)
    from live.providers.whisper_stt import WhisperTranscriber

    stt = WhisperTranscriber("tiny.en", cpu_threads=2)
    stt.load()
    yield stt
    stt.close()

