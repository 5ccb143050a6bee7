"""PCM/WAV conversion, streaming resampling and level envelopes."""

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from live.audio.envelope import rms_envelope, rms_level
from live.audio.resample import StreamResampler, resample_pcm16
from live.audio.wav import pcm16_duration_ms, pcm16_to_wav, wav_duration_ms, wav_to_pcm16


def sine(freq: float, rate: int, seconds: float, amp: float = 12000.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * freq * t) * amp).astype("<i2")


def wav_bytes(fmt_tag: int, channels: int, rate: int, bits: int, data: bytes,
              extensible: bool = False, data_size: int | None = None, extra_chunk: bool = False) -> bytes:
    """Build a WAV by hand, so the decoder is tested against layouts other encoders write."""
    block = channels * bits // 8
    if extensible:
        fmt = struct.pack("<HHIIHH", 0xFFFE, channels, rate, rate * block, block, bits)
        fmt += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", fmt_tag) + b"\x00" * 14
    else:
        fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    if extra_chunk:
        body += b"LIST" + struct.pack("<I", 3) + b"abc\x00"  # odd size, padded
    body += b"data" + struct.pack("<I", len(data) if data_size is None else data_size) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


class TestWav:
    def test_round_trip(self):
        pcm = sine(440, 16000, 0.25).tobytes()
        wav = pcm16_to_wav(pcm, 16000)
        assert wav[:4] == b"RIFF" and len(wav) == 44 + len(pcm)
        assert wav_to_pcm16(wav) == (pcm, 16000)
        assert wav_duration_ms(wav) == 250
        assert pcm16_duration_ms(pcm, 16000) == 250

    @given(st.binary(max_size=2000), st.sampled_from([8000, 16000, 22050, 48000]))
    @settings(max_examples=60, deadline=None)
    def test_round_trip_any_bytes(self, pcm, rate):
        out, out_rate = wav_to_pcm16(pcm16_to_wav(pcm, rate))
        assert out_rate == rate
        assert out == pcm[: len(pcm) - len(pcm) % 2]

    def test_stereo_is_downmixed(self):
        left = sine(440, 16000, 0.1)
        stereo = np.stack([left, np.zeros_like(left)], axis=1).astype("<i2").tobytes()
        pcm, rate = wav_to_pcm16(pcm16_to_wav(stereo, 16000, channels=2))
        mono = np.frombuffer(pcm, "<i2")
        assert rate == 16000 and mono.size == left.size
        assert np.max(np.abs(mono - left.astype(np.int32) / 2)) <= 1

    @pytest.mark.parametrize("bits", [8, 24, 32])
    def test_integer_widths(self, bits):
        ref = sine(440, 8000, 0.05).astype(np.int64)
        if bits == 8:
            data = ((ref >> 8) + 128).astype(np.uint8).tobytes()
        elif bits == 24:
            v = (ref << 8).astype("<i4").tobytes()
            data = b"".join(v[i : i + 3] for i in range(0, len(v), 4))
        else:
            data = (ref << 16).astype("<i4").tobytes()
        pcm, rate = wav_to_pcm16(wav_bytes(1, 1, 8000, bits, data))
        out = np.frombuffer(pcm, "<i2").astype(np.int64)
        tolerance = 256 if bits == 8 else 1
        assert rate == 8000 and np.max(np.abs(out - ref)) <= tolerance

    @pytest.mark.parametrize("bits, dtype", [(32, "<f4"), (64, "<f8")])
    def test_float_and_extensible(self, bits, dtype):
        ref = sine(300, 22050, 0.05)
        data = (ref.astype(np.float64) / 32768.0).astype(dtype).tobytes()
        for extensible in (False, True):
            pcm, rate = wav_to_pcm16(wav_bytes(3, 1, 22050, bits, data, extensible=extensible))
            assert rate == 22050
            assert np.max(np.abs(np.frombuffer(pcm, "<i2").astype(int) - ref)) <= 1

    def test_streamed_header_and_odd_chunks(self):
        # espeak-ng --stdout writes 0x7FFFF000 as the data size; a LIST chunk of odd size is padded.
        pcm = sine(200, 22050, 0.1).tobytes()
        wav = wav_bytes(1, 1, 22050, 16, pcm, data_size=0x7FFFF000, extra_chunk=True)
        assert wav_to_pcm16(wav) == (pcm, 22050)
        assert wav_duration_ms(wav) == 100

    @pytest.mark.parametrize("blob, message", [
        (b"", "not a WAV"),
        (b"ID3\x03" + b"\x00" * 40, "not a WAV"),
        (b"RIFF\x04\x00\x00\x00WAVE", "no fmt"),
        (wav_bytes(0x55, 1, 16000, 16, b"\x00" * 10), "unsupported WAV encoding"),
        (wav_bytes(1, 1, 16000, 12, b"\x00" * 10), "unsupported WAV sample width"),
    ])
    def test_rejects_non_wav_clearly(self, blob, message):
        with pytest.raises(ValueError, match=message):
            wav_to_pcm16(blob)


class TestResample:
    def test_identity_passes_through(self):
        rs = StreamResampler(16000, 16000)
        assert rs.process(b"\x01\x02\x03") == b"\x01\x02"
        assert rs.process(b"\x04") == b"\x03\x04"
        assert rs.flush() == b""
        assert resample_pcm16(b"\x01\x02\x03", 16000, 16000) == b"\x01\x02"

    @pytest.mark.parametrize("in_rate, out_rate", [(48000, 16000), (22050, 16000), (16000, 24000), (44100, 48000)])
    def test_one_shot_length_and_pitch(self, in_rate, out_rate):
        pcm = sine(440, in_rate, 1.0).tobytes()
        out = np.frombuffer(resample_pcm16(pcm, in_rate, out_rate), "<i2").astype(np.float64)
        assert abs(out.size - out_rate) <= 2
        spectrum = np.abs(np.fft.rfft(out * np.hanning(out.size)))
        peak_hz = np.argmax(spectrum) * out_rate / out.size
        assert abs(peak_hz - 440) < 2

    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_random_chunks_match_one_shot_without_boundary_spikes(self, seed):
        in_rate, out_rate = 48000, 16000
        src = sine(440, in_rate, 1.0)
        pcm = src.tobytes()
        rng = np.random.default_rng(seed)
        rs, parts, pos = StreamResampler(in_rate, out_rate), [], 0
        while pos < len(pcm):
            n = int(rng.integers(1, 1500))  # odd sizes split samples across chunks
            parts.append(rs.process(pcm[pos : pos + n]))
            pos += n
        parts.append(rs.flush())
        streamed = np.frombuffer(b"".join(parts), "<i2").astype(np.int32)
        one_shot = np.frombuffer(resample_pcm16(pcm, in_rate, out_rate), "<i2").astype(np.int32)
        assert streamed.size == one_shot.size
        assert np.max(np.abs(streamed - one_shot)) <= 4
        # A click at a chunk boundary would show as a second difference far above a clean sine's.
        ideal = 2 * 12000 * (1 - np.cos(2 * np.pi * 440 / out_rate))
        interior = np.abs(np.diff(streamed[200:-200], 2))
        assert interior.max() <= ideal * 1.1 + 8

    def test_flush_resets_for_reuse(self):
        rs = StreamResampler(22050, 16000)
        first = rs.process(sine(300, 22050, 0.2).tobytes()) + rs.flush()
        second = rs.process(sine(300, 22050, 0.2).tobytes()) + rs.flush()
        a, b = np.frombuffer(first, "<i2").astype(int), np.frombuffer(second, "<i2").astype(int)
        assert a.size == b.size and np.max(np.abs(a - b)) <= 2  # soxr int16 rounding is dithered

    def test_rejects_bad_rates(self):
        with pytest.raises(ValueError):
            StreamResampler(0, 16000)
        with pytest.raises(ValueError):
            resample_pcm16(b"", 16000, -1)


class TestEnvelope:
    def test_normalised_to_loudest_slice(self):
        quiet, loud = sine(440, 16000, 0.04, 1000), sine(440, 16000, 0.04, 8000)
        env = rms_envelope(np.concatenate([quiet, loud]).tobytes(), 16000, slice_ms=20)
        assert len(env) == 4
        assert env[2] == pytest.approx(1.0) and env[3] == pytest.approx(1.0, abs=0.02)
        assert env[0] == pytest.approx(1 / 8, abs=0.02)

    def test_silence_and_empty(self):
        assert rms_envelope(b"\x00\x00" * 1000, 16000) == [0.0] * 4  # 62.5 ms -> 4 slices
        assert rms_envelope(b"", 16000) == []
        assert rms_level(b"") == 0.0

    def test_partial_last_slice_uses_its_own_length(self):
        pcm = sine(440, 16000, 0.03).tobytes()  # 20 ms + 10 ms
        env = rms_envelope(pcm, 16000)
        assert len(env) == 2 and env[1] == pytest.approx(env[0], abs=0.05)

    def test_level_is_fraction_of_full_scale(self):
        full = np.full(1600, 32767, dtype="<i2").tobytes()
        assert rms_level(full) == pytest.approx(1.0, abs=1e-4)
        assert rms_level(sine(440, 16000, 0.1, 16384).tobytes()) == pytest.approx(0.5 / np.sqrt(2), abs=0.01)
        assert rms_level(b"\x00\x01\x02") == rms_level(b"\x00\x01")

    def test_rejects_bad_parameters(self):
        with pytest.raises(ValueError):
            rms_envelope(b"\x00\x00", 0)
