"""Fixtures for integration tests that need real speech."""

import pytest

from live.audio.resample import resample_pcm16


@pytest.fixture(scope="session")
def say():
    """`say(text, rate=16000)`: real speech from the bundled Piper voice, as PCM16 mono."""
    from live.providers.models import missing_offline_packages

    if missing_offline_packages(stt=False, tts=True):
        pytest.skip("offline speech packages are not installed")
    from live.providers.piper_tts import PiperSynthesizer

    tts = PiperSynthesizer(noise_scale=0.0, noise_w_scale=0.0)
    tts.load()
    yield lambda text, rate=16000: resample_pcm16(tts.synthesize(text), tts.sample_rate, rate)
    tts.close()
