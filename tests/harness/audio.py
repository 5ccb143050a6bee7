"""Test audio made on the spot (no fixtures on disk)."""

import numpy as np


def speech_like_pcm(seconds: float, rate: int = 16000, seed: int = 1) -> bytes:
    """Voiced, syllable-shaped noise: enough for transports and fake STT (not for real STT)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)
    voice = np.sin(2 * np.pi * 140 * t) + 0.5 * np.sin(2 * np.pi * 280 * t) + 0.2 * rng.standard_normal(t.size)
    return (voice * envelope * 6000).astype("<i2").tobytes()


def silence_pcm(seconds: float, rate: int = 16000) -> bytes:
    return bytes(2 * int(seconds * rate))
