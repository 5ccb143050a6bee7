"""Fixtures shared by the integration tests: plugin settings for one test, real speech."""

from dataclasses import replace

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


@pytest.fixture
def tune(astrbot):
    """`tune(**fields)` changes the plugin's settings for this test (new connections see them)."""
    plugin = astrbot.plugin()
    saved = plugin.settings

    def apply(**fields):
        async def go():
            plugin.settings = replace(saved, **fields)

        astrbot.call(go)
        return plugin.settings

    yield apply

    async def restore():
        plugin.settings = saved

    astrbot.call(restore)
