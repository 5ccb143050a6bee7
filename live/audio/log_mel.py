"""Whisper-style log-mel features, in numpy: what the smart-turn end-of-turn model reads.

Written from Whisper's published feature definition (OpenAI, "Robust Speech
Recognition via Large-Scale Weak Supervision", and its reference `log_mel_spectrogram`):

1. 16 kHz mono; the model sees a fixed window (8 s for smart-turn): the last 8 s of
   the utterance, left-padded with zeros when shorter, so the end of speech always
   sits at the right edge where the model looks for it.
2. The waveform is scaled to zero mean and unit variance over that window
   (smart-turn's reference inference does this; plain Whisper does not).
3. STFT: periodic Hann window of 400 samples (25 ms), hop 160 (10 ms), frames
   centred (the signal is reflect-padded by 200 samples each side), power spectrum;
   the last frame is dropped, so N samples give N / 160 frames (800 for 8 s).
4. 80 triangular mel filters on the Slaney mel scale (linear below 1 kHz,
   logarithmic above), 0-8 kHz, each scaled to unit area (Slaney normalisation).
5. log10 of the mel energies (floored at 1e-10), clamped to at most 8 below the
   window's maximum, then mapped by (x + 4) / 4.

Pure and synchronous; no state. `whisper_log_mel` is the one entry point.

Example:
    >>> features = whisper_log_mel(pcm16_bytes)   # float32 array (80, 800)
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
N_MELS = 80
WINDOW_SECONDS = 8
WINDOW_SAMPLES = WINDOW_SECONDS * SAMPLE_RATE
N_FRAMES = WINDOW_SAMPLES // HOP
"""Frames of a full window: 800 for 8 s."""

_LOG_FLOOR = 1e-10
_DYNAMIC_RANGE = 8.0  # log10 units kept below the maximum (80 dB)
_NORMALISE_EPS = 1e-7

# Slaney mel scale: linear up to 1 kHz (3 mels per 200 Hz), logarithmic above it
# with 27 mels per factor 6.4 (so 1 kHz is mel 15 and the curve is continuous).
_BREAK_HZ = 1000.0
_MELS_PER_HZ = 3.0 / 200.0
_BREAK_MEL = _BREAK_HZ * _MELS_PER_HZ
_LOG_STEP = np.log(6.4) / 27.0


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney mel of `hz`."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz * _MELS_PER_HZ
    logarithmic = _BREAK_MEL + np.log(np.maximum(hz, _BREAK_HZ) / _BREAK_HZ) / _LOG_STEP
    return np.where(hz < _BREAK_HZ, linear, logarithmic)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of `hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel / _MELS_PER_HZ
    logarithmic = _BREAK_HZ * np.exp(_LOG_STEP * (np.maximum(mel, _BREAK_MEL) - _BREAK_MEL))
    return np.where(mel < _BREAK_MEL, linear, logarithmic)


@lru_cache(maxsize=4)
def mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Triangular Slaney filters, shape (n_mels, n_fft // 2 + 1), each of unit area in Hz.

    Filter i rises from edge i to its peak at edge i + 1 and falls to edge i + 2, the
    n_mels + 2 edges evenly spaced in mel from 0 Hz to Nyquist. Read-only (cached).
    """
    bin_hz = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate / 2), n_mels + 2))
    lower, centre, upper = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (bin_hz - lower) / (centre - lower)
    falling = (upper - bin_hz) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= 2.0 / (upper - lower)  # unit area: the triangle's height is 2 / its base
    weights.setflags(write=False)
    return weights


@lru_cache(maxsize=2)
def _hann(n: int) -> np.ndarray:
    """Periodic Hann window (the DFT-even form used for spectral analysis)."""
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)
    window.setflags(write=False)
    return window


@lru_cache(maxsize=1)
def _sparse_filterbank() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`mel_filterbank()` as (bins, weights, starts): filter m is `weights[starts[m]:starts[m+1]]` on
    `bins[...]` (each triangle covers a few contiguous bins; 391 weights of 16080 are non-zero).

    Applying it with a gather and `np.add.reduceat` instead of a matrix product keeps the features
    off BLAS: OpenBLAS would run this small product on its own threads, which then spin-wait at
    normal priority for several times the product's cost (measured: 4 ms here, 6 ms there).
    """
    bank = mel_filterbank()
    rows = [np.flatnonzero(row) for row in bank]
    if any(r.size == 0 for r in rows):
        raise ValueError("every mel filter must cover at least one FFT bin")  # reduceat needs non-empty runs
    bins = np.concatenate(rows)
    weights = np.concatenate([bank[m, r] for m, r in enumerate(rows)])
    starts = np.cumsum([0] + [r.size for r in rows[:-1]])
    for a in (bins, weights, starts):
        a.setflags(write=False)
    return bins, weights, starts


def _mel_power(frames: np.ndarray) -> np.ndarray:
    """Mel energies (frames, N_MELS) of windowed-to-be frames (frames, N_FFT)."""
    spectrum = np.fft.rfft(frames * _hann(N_FFT), axis=1)  # (frames, bins)
    power = spectrum.real**2 + spectrum.imag**2
    bins, weights, starts = _sparse_filterbank()
    return np.add.reduceat(power[:, bins] * weights, starts, axis=1)


def _leading_run(x: np.ndarray) -> int:
    """How many samples at the start of `x` equal its first one (a left zero padding, normalised)."""
    if x.size == 0:
        return 0
    different = np.flatnonzero(x != x[0])
    return int(different[0]) if different.size else x.size


def last_window(samples: np.ndarray, length: int = WINDOW_SAMPLES) -> np.ndarray:
    """The last `length` samples, left-padded with zeros when there are fewer."""
    if samples.size >= length:
        return samples[samples.size - length :]
    return np.concatenate([np.zeros(length - samples.size, dtype=samples.dtype), samples])


def pcm16_to_float(pcm: bytes) -> np.ndarray:
    """Little-endian PCM16 bytes as float64 in [-1, 1). An odd trailing byte is ignored."""
    usable = len(pcm) - (len(pcm) % 2)
    return np.frombuffer(pcm[:usable], dtype="<i2").astype(np.float64) / 32768.0


def log_mel_spectrogram(samples: np.ndarray) -> np.ndarray:
    """Whisper log-mel of exactly these samples (no windowing or normalisation): (N_MELS, len // HOP).

    A window shorter than 8 s of speech starts with a constant run (the zero padding): every
    frame inside it has the same spectrum, so it is computed once (most of the work for a
    short utterance), with the same result as frame by frame.
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.size < N_FFT // 2 + 1:
        raise ValueError(f"need at least {N_FFT // 2 + 1} samples for a centred STFT, got {x.size}")
    padded = np.pad(x, N_FFT // 2, mode="reflect")
    n_frames = x.size // HOP  # the centred STFT has one more; Whisper drops the last
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:n_frames]
    # Frame t covers x[t * HOP - N_FFT/2 : t * HOP + N_FFT/2]; the reflection left of x[0] mirrors
    # x[1 : N_FFT/2 + 1]. So frames 0 .. n_same - 1 lie wholly in a constant run of `run` samples:
    run = _leading_run(x)
    n_same = min(n_frames, (run - N_FFT // 2) // HOP + 1) if run > N_FFT // 2 else 0
    if n_same > 1:
        distinct = _mel_power(frames[n_same - 1 :])  # the first row stands for all the constant frames
        mel = np.concatenate([np.broadcast_to(distinct[:1], (n_same - 1, N_MELS)), distinct])
    else:
        mel = _mel_power(frames)
    log_mel = np.log10(np.maximum(mel.T, _LOG_FLOOR))  # (mels, frames)
    log_mel = np.maximum(log_mel, log_mel.max() - _DYNAMIC_RANGE)
    return ((log_mel + 4.0) / 4.0).astype(np.float32)


def whisper_log_mel(pcm: bytes | np.ndarray, *, normalise: bool = True) -> np.ndarray:
    """Features of the last 8 s of `pcm` (PCM16 bytes or float samples, 16 kHz mono): float32 (80, 800).

    `normalise` scales the window to zero mean and unit variance first, as smart-turn
    expects. Silence gives a constant -1.5 everywhere.
    """
    samples = pcm16_to_float(pcm) if isinstance(pcm, (bytes, bytearray, memoryview)) else np.asarray(pcm, np.float64)
    window = last_window(samples)
    if normalise:
        window = (window - window.mean()) / np.sqrt(window.var() + _NORMALISE_EPS)
    return log_mel_spectrogram(window)
