"""WAV <-> PCM16 conversion without soundfile or the stdlib ``wave`` module.

Clients and TTS engines send WAV in every flavour: 8/24/32-bit integer,
float, WAVE_FORMAT_EXTENSIBLE, stereo, and streamed headers whose sizes are
placeholders (espeak-ng ``--stdout`` writes 0x7FFFF000). ``wave`` rejects half
of those, so this is a small RIFF walker on top of numpy.

Example:
    >>> wav = pcm16_to_wav(b"\\x00\\x00" * 160, 16000)
    >>> wav_to_pcm16(wav) == (b"\\x00\\x00" * 160, 16000)
    True
"""

from __future__ import annotations

import struct

import numpy as np

_FORMAT_PCM = 0x0001
_FORMAT_FLOAT = 0x0003
_FORMAT_EXTENSIBLE = 0xFFFE


def pcm16_to_wav(pcm: bytes, sample_rate: int, channels: int = 1) -> bytes:
    """Wrap PCM16LE samples in a canonical 44-byte-header WAV container."""
    if sample_rate <= 0 or channels <= 0:
        raise ValueError(f"invalid WAV format: {sample_rate} Hz, {channels} channel(s)")
    frame_bytes = 2 * channels
    usable = len(pcm) - len(pcm) % frame_bytes
    data = bytes(pcm[:usable])
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + len(data),
        b"WAVE",
        b"fmt ",
        16,
        _FORMAT_PCM,
        channels,
        sample_rate,
        sample_rate * frame_bytes,
        frame_bytes,
        16,
        b"data",
        len(data),
    )
    return header + data


def _parse_chunks(data: bytes) -> tuple[tuple[int, int, int, int], memoryview]:
    """Return ((format, channels, rate, bits), data view) of a RIFF/WAVE blob."""
    if len(data) < 12 or data[:4] not in (b"RIFF", b"RIFX") or data[8:12] != b"WAVE":
        raise ValueError("not a WAV file (missing RIFF/WAVE header)")
    if data[:4] == b"RIFX":
        raise ValueError("big-endian RIFX WAV is not supported")
    view = memoryview(data)
    fmt: tuple[int, int, int, int] | None = None
    pos = 12
    while pos + 8 <= len(data):
        chunk_id = bytes(view[pos : pos + 4])
        size = struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if chunk_id == b"fmt ":
            if size < 16 or body + 16 > len(data):
                raise ValueError("WAV fmt chunk is truncated")
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", data, body)
            if tag == _FORMAT_EXTENSIBLE:
                if size < 40 or body + 40 > len(data):
                    raise ValueError("WAV extensible fmt chunk is truncated")
                tag = struct.unpack_from("<H", data, body + 24)[0]
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            if fmt is None:
                raise ValueError("WAV data chunk comes before its fmt chunk")
            # Streamed WAVs carry a placeholder size: clamp to what is present.
            end = min(body + size, len(data))
            return fmt, view[body:end]
        pos = body + size + (size & 1)
    raise ValueError("WAV has no data chunk" if fmt else "WAV has no fmt chunk")


def _to_float(raw: memoryview, tag: int, bits: int) -> np.ndarray:
    """Decode interleaved samples of any supported encoding to float32 in [-1, 1]."""
    if tag == _FORMAT_FLOAT and bits in (32, 64):
        dtype = "<f4" if bits == 32 else "<f8"
        n = len(raw) // (bits // 8)
        return np.frombuffer(raw[: n * (bits // 8)], dtype=dtype).astype(np.float32)
    if tag != _FORMAT_PCM:
        raise ValueError(f"unsupported WAV encoding (format tag 0x{tag:04x}, {bits} bits)")
    if bits == 8:
        return (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    if bits == 16:
        n = len(raw) // 2
        return np.frombuffer(raw[: n * 2], dtype="<i2").astype(np.float32) / 32768.0
    if bits == 24:
        n = len(raw) // 3
        b = np.frombuffer(raw[: n * 3], dtype=np.uint8).reshape(n, 3).astype(np.int32)
        ints = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        ints = np.where(ints & 0x800000, ints - 0x1000000, ints)
        return ints.astype(np.float32) / 8388608.0
    if bits == 32:
        n = len(raw) // 4
        return (np.frombuffer(raw[: n * 4], dtype="<i4").astype(np.float64) / 2147483648.0).astype(
            np.float32
        )
    raise ValueError(f"unsupported WAV sample width: {bits} bits")


def wav_to_pcm16(data: bytes) -> tuple[bytes, int]:
    """Decode a WAV blob to mono PCM16LE, returning ``(pcm, sample_rate)``.

    Raises:
        ValueError: the input is not a WAV file or uses an unsupported encoding.
    """
    (tag, channels, rate, bits), raw = _parse_chunks(bytes(data))
    if channels <= 0 or rate <= 0:
        raise ValueError(f"invalid WAV format: {rate} Hz, {channels} channel(s)")
    if tag == _FORMAT_PCM and bits == 16 and channels == 1:
        return bytes(raw[: len(raw) - len(raw) % 2]), rate
    samples = _to_float(raw, tag, bits)
    frames = len(samples) // channels
    samples = samples[: frames * channels]
    if channels > 1:
        samples = samples.reshape(frames, channels).mean(axis=1)
    pcm = np.clip(np.round(samples * 32768.0), -32768, 32767).astype("<i2")
    return pcm.tobytes(), rate


def pcm16_duration_ms(pcm: bytes, sample_rate: int) -> int:
    """Duration of mono PCM16 in whole milliseconds (rounded down)."""
    if sample_rate <= 0:
        raise ValueError(f"invalid sample rate: {sample_rate}")
    return (len(pcm) // 2) * 1000 // sample_rate


def wav_duration_ms(data: bytes) -> int:
    """Duration of a WAV blob in whole milliseconds, read from its header and data size."""
    (_, channels, rate, bits), raw = _parse_chunks(bytes(data))
    frame_bytes = max(1, channels * max(1, bits // 8))
    if rate <= 0:
        raise ValueError(f"invalid WAV sample rate: {rate}")
    return (len(raw) // frame_bytes) * 1000 // rate
