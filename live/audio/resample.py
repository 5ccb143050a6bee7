"""Sample-rate conversion of PCM16 mono, streaming and one-shot.

Microphones arrive at 48 kHz, VAD and STT want 16 kHz, and TTS speaks at
22.05 kHz. Resampling each network chunk independently clicks at every
boundary, so streams keep one soxr filter state for their whole life.

Example:
    >>> rs = StreamResampler(48000, 16000)
    >>> out = rs.process(pcm_48k_chunk) + rs.process(next_chunk) + rs.flush()
"""

from __future__ import annotations

import numpy as np
import soxr


class StreamResampler:
    """Stateful PCM16 mono resampler; feed any chunk size, odd byte counts included."""

    __slots__ = ("in_rate", "out_rate", "_stream", "_carry")

    def __init__(self, in_rate: int, out_rate: int) -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {in_rate} -> {out_rate}")
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream: soxr.ResampleStream | None = (
            None
            if in_rate == out_rate
            else soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality="HQ")
        )
        self._carry = b""

    def __repr__(self) -> str:
        return f"StreamResampler({self.in_rate} -> {self.out_rate})"

    def _take_whole_samples(self, pcm16: bytes) -> bytes:
        """Join the carried byte with new input and keep an odd trailing byte for later."""
        data = self._carry + bytes(pcm16) if self._carry else bytes(pcm16)
        if len(data) & 1:
            self._carry = data[-1:]
            return data[:-1]
        self._carry = b""
        return data

    def process(self, pcm16: bytes) -> bytes:
        """Resample one chunk; output may lag input by the filter delay until `flush`."""
        data = self._take_whole_samples(pcm16)
        if self._stream is None or not data:
            return data
        samples = np.frombuffer(data, dtype="<i2")
        return self._stream.resample_chunk(samples, last=False).astype("<i2", copy=False).tobytes()

    def flush(self) -> bytes:
        """Drain the filter at end of stream; a dangling half sample is dropped."""
        self._carry = b""
        if self._stream is None:
            return b""
        out = self._stream.resample_chunk(np.zeros(0, dtype=np.int16), last=True)
        self._stream.clear()
        return out.astype("<i2", copy=False).tobytes()


def resample_pcm16(pcm: bytes, in_rate: int, out_rate: int) -> bytes:
    """Resample a whole PCM16 mono buffer in one call."""
    if in_rate <= 0 or out_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {in_rate} -> {out_rate}")
    data = bytes(pcm[: len(pcm) - len(pcm) % 2])
    if in_rate == out_rate or not data:
        return data
    samples = np.frombuffer(data, dtype="<i2")
    return soxr.resample(samples, in_rate, out_rate, quality="HQ").astype("<i2", copy=False).tobytes()
