"""Fixtures for the real-browser tests: microphone WAVs made with Piper, and headless Chromium.

The browser is Debian's /usr/bin/chromium driven by Python Playwright (sync API); its microphone
is a WAV file (`--use-file-for-fake-audio-capture=<wav>%noloop`: after the file, silence). A
second capture in the same browser would replay the file from the start, so each test launches
its own browser with its own WAV (about 1 s). Never `playwright install` (it downloads browsers):
Chromium comes from apt (scripts/test.sh installs it). The WAV must be 16-bit PCM: Chromium
captures 24-bit files as silence.
"""

from __future__ import annotations

import os
import shutil
import wave
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "e2e"
CHROMIUM = os.environ.get("LIVE_E2E_CHROMIUM", "/usr/bin/chromium")
MIC_RATE = 48000  # Chromium's fake capture takes 8-48 kHz mono/stereo 8/16/32-bit; never 24-bit


def _silence(seconds: float) -> bytes:
    return bytes(2 * int(MIC_RATE * seconds))


def write_wav(path: Path, pcm: bytes, rate: int = MIC_RATE) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return path


class MicWavs:
    """Builds mono 16-bit 48 kHz microphone WAVs from spoken phrases and silences."""

    def __init__(self, folder: Path, speak: Callable[[str], bytes]) -> None:
        self.folder = folder
        self._speak = speak
        self._cache: dict[str, bytes] = {}

    def speech(self, text: str) -> bytes:
        """PCM16 mono at 48 kHz of `text` spoken."""
        if text not in self._cache:
            self._cache[text] = self._speak(text)
        return self._cache[text]

    def seconds(self, pcm: bytes) -> float:
        return len(pcm) / 2 / MIC_RATE

    def make(self, name: str, *parts: str | float) -> Path:
        """A WAV of `parts` in order: a float is that many seconds of silence, a str is speech."""
        pcm = b"".join(_silence(p) if isinstance(p, (int, float)) else self.speech(p) for p in parts)
        return write_wav(self.folder / f"{name}.wav", pcm)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; never `playwright install`)")
    return CHROMIUM


@pytest.fixture(scope="module")
def mic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MicWavs]:
    """Real speech for the microphone: the bundled Piper voice, deterministic (noise off)."""
    from live.audio.resample import resample_pcm16
    from live.providers.models import OFFLINE_INSTALL_HINT, missing_offline_packages

    missing = missing_offline_packages(stt=False, tts=True)
    if missing:
        pytest.skip(f"Piper is not installed ({', '.join(missing)}): {OFFLINE_INSTALL_HINT}")
    from live.providers.piper_tts import PiperSynthesizer

    tts = PiperSynthesizer(noise_scale=0.0, noise_w_scale=0.0)
    tts.load()
    try:
        yield MicWavs(
            tmp_path_factory.mktemp("mic"),
            lambda text: resample_pcm16(tts.synthesize(text), tts.sample_rate, MIC_RATE),
        )
    finally:
        tts.close()


@pytest.fixture
def quiet_mic(tmp_path: Path) -> Path:
    """A silent microphone, for tests that type or bridge their input (no Piper needed)."""
    return write_wav(tmp_path / "quiet.wav", _silence(0.5))


@pytest.fixture(scope="module")
def playwright_sync():
    """One Playwright driver for the module (the sync API: the server runs in its own thread)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


@pytest.fixture
def launch(playwright_sync, chromium_path: str):
    """`launch(wav)` starts headless Chromium whose microphone is `wav`; closed after the test."""
    browsers = []

    def _launch(wav: Path):
        browser = playwright_sync.chromium.launch(
            executable_path=chromium_path,
            headless=True,
            args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                f"--use-file-for-fake-audio-capture={wav}%noloop",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )  # fmt: skip
        browsers.append(browser)
        return browser

    yield _launch
    for browser in browsers:  # closes the pages (and their sockets) before the server ever stops
        browser.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session", autouse=True)
def _no_stale_shots() -> None:
    """Screenshots of an earlier run would pass for this run's: start from an empty folder."""
    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS, ignore_errors=True)
