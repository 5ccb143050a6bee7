"""Loudness of PCM16 audio: per-slice envelopes for lip sync and a single level meter.

Open-LLM-VTuber sends each reply's audio with a list of volumes, one per 20 ms
slice, divided by the loudest slice so an avatar's mouth opens fully on the
loudest syllable whatever the TTS gain. `rms_envelope` reproduces that.

Example:
    >>> rms_envelope(pcm16_16k_100ms, 16000)        # five 20 ms slices
    [0.12, 0.85, 1.0, 0.64, 0.05]
"""

from __future__ import annotations

import numpy as np


def _samples(pcm16: bytes) -> np.ndarray:
    """PCM16LE bytes as float64 samples (a dangling odd byte is ignored)."""
    usable = len(pcm16) - len(pcm16) % 2
    return np.frombuffer(bytes(pcm16[:usable]), dtype="<i2").astype(np.float64)


def rms_envelope(pcm16: bytes, sample_rate: int, slice_ms: int = 20) -> list[float]:
    """RMS per `slice_ms` slice, normalised so the loudest slice is 1.0.

    The last slice may be shorter. Silence (all zeros) gives all zeros.
    """
    if sample_rate <= 0 or slice_ms <= 0:
        raise ValueError(f"invalid envelope parameters: {sample_rate} Hz, {slice_ms} ms")
    samples = _samples(pcm16)
    if samples.size == 0:
        return []
    step = max(1, sample_rate * slice_ms // 1000)
    n_slices = -(-samples.size // step)
    padded = np.zeros(n_slices * step, dtype=np.float64)
    padded[: samples.size] = samples * samples
    sums = padded.reshape(n_slices, step).sum(axis=1)
    counts = np.full(n_slices, step, dtype=np.float64)
    counts[-1] = samples.size - (n_slices - 1) * step
    rms = np.sqrt(sums / counts)
    peak = float(rms.max())
    if peak <= 0.0:
        return [0.0] * n_slices
    return [float(v) for v in rms / peak]


def rms_level(pcm16: bytes) -> float:
    """RMS of the whole buffer as a fraction of full scale (0..1)."""
    samples = _samples(pcm16)
    if samples.size == 0:
        return 0.0
    return min(1.0, float(np.sqrt(np.mean(samples * samples))) / 32768.0)
