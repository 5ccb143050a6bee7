"""The shipped end-of-turn model file, our Whisper log-mel features, and the model wrapper.

The speech-level checks (Piper questions score high, unfinished phrases low) are in
tests/speech/test_end_of_turn_speech.py.
"""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest

from live.audio import log_mel
from live.audio.log_mel import (
    HOP,
    N_FRAMES,
    N_MELS,
    SAMPLE_RATE,
    WINDOW_SAMPLES,
    hz_to_mel,
    mel_filterbank,
    mel_to_hz,
    whisper_log_mel,
)
from live.audio.turn_model import MODEL_DIR, MODEL_PATH, MODEL_SHA256, EndOfTurnModel, TurnModelUnavailable


def tone(hz: float, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return amplitude * np.sin(2 * np.pi * hz * t)


def pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


# --- the shipped file -------------------------------------------------------------------


def test_shipped_model_is_the_file_its_provenance_names():
    provenance = json.loads((MODEL_DIR / "PROVENANCE.json").read_text())
    digest = hashlib.sha256(MODEL_PATH.read_bytes()).hexdigest()
    assert digest == provenance["sha256"] == MODEL_SHA256
    assert MODEL_PATH.stat().st_size == provenance["size_bytes"]
    assert provenance["file"] == MODEL_PATH.name
    source = provenance["obtained_from"]
    assert (source["package"], source["version"]) == ("pipecat-ai", "1.14.0")
    assert source["path_in_wheel"].endswith("/" + MODEL_PATH.name)
    assert provenance["license"] == "BSD-2-Clause"
    license_text = (MODEL_DIR / provenance["license_file"]).read_text()
    assert "BSD 2-Clause License" in license_text and "Daily" in license_text


# --- log-mel features -------------------------------------------------------------------


def test_slaney_mel_scale_matches_its_published_values():
    # linear below 1 kHz (3 mels per 200 Hz), 27 mels per factor 6.4 above it
    assert hz_to_mel(200.0) == pytest.approx(3.0)
    assert hz_to_mel(1000.0) == pytest.approx(15.0)
    assert hz_to_mel(6400.0) == pytest.approx(42.0)
    assert hz_to_mel(8000.0) == pytest.approx(45.245640471924965)
    hz = np.array([0.0, 123.0, 999.0, 1000.0, 2500.0, 7999.0])
    assert mel_to_hz(hz_to_mel(hz)) == pytest.approx(hz)


def test_filterbank_triangles_have_unit_area_and_rising_centres():
    bank = mel_filterbank()
    assert bank.shape == (N_MELS, 201)
    assert (bank >= 0).all()
    peaks = bank.argmax(axis=1)
    assert (np.diff(peaks) >= 0).all()
    bin_hz = SAMPLE_RATE / 400
    wide = bank[(bank > 0).sum(axis=1) >= 6]  # the sampled area of a narrow triangle is too coarse to check
    assert len(wide) >= 25
    assert wide.sum(axis=1) * bin_hz == pytest.approx(1.0, rel=0.03)


def test_features_have_the_models_shape_and_type():
    features = whisper_log_mel(pcm16(tone(440, 2.0)))
    assert features.shape == (N_MELS, N_FRAMES) == (80, 800)
    assert features.dtype == np.float32
    assert np.isfinite(features).all()
    # the dynamic range is clamped to 8 log10 units: (x + 4) / 4 spans at most 2
    assert features.max() - features.min() <= 2.0 + 1e-6


def test_silence_is_flat_at_the_floor():
    for pcm in (b"", bytes(2 * SAMPLE_RATE), bytes(2 * 10 * SAMPLE_RATE)):
        features = whisper_log_mel(pcm)
        assert features.shape == (80, 800)
        assert (features == np.float32(-1.5)).all()  # log10(1e-10) = -10 -> (-10 + 4) / 4


@pytest.mark.parametrize("hz", [300.0, 1000.0, 3000.0])
def test_a_tone_lands_in_the_mel_band_centred_on_it(hz):
    features = whisper_log_mel(pcm16(tone(hz, 8.0)))
    centres_hz = mel_to_hz(np.linspace(0, hz_to_mel(SAMPLE_RATE / 2), N_MELS + 2))[1:-1]
    nearest = np.abs(centres_hz - hz).argsort()[:2]
    loudest = features[:, 100:700].mean(axis=1).argmax()
    assert loudest in nearest


def test_short_audio_sits_at_the_right_edge_of_the_window():
    features = whisper_log_mel(pcm16(tone(1000, 1.0)))  # 1 s = the last 100 frames
    loudest_band = features.max(axis=0)
    assert loudest_band[: N_FRAMES - 101].max() < loudest_band[N_FRAMES - 99 :].min() - 1.0
    assert np.ptp(features[:, : N_FRAMES - 101]) < 1e-6  # the zero padding is uniform


def test_only_the_last_eight_seconds_count():
    last_eight = tone(700, 8.0, amplitude=0.3)
    longer = np.concatenate([tone(2500, 3.0, amplitude=0.9), last_eight])
    assert np.array_equal(whisper_log_mel(pcm16(longer)), whisper_log_mel(pcm16(last_eight)))


def test_pcm_bytes_and_float_samples_agree_and_an_odd_byte_is_ignored():
    samples = tone(500, 1.5)
    pcm = pcm16(samples)
    assert np.array_equal(whisper_log_mel(pcm), whisper_log_mel(pcm + b"\x01"))
    from_floats = whisper_log_mel(np.frombuffer(pcm, "<i2") / 32768.0)
    assert np.allclose(whisper_log_mel(pcm), from_floats, atol=1e-6)


def test_features_agree_with_faster_whispers_independent_implementation():
    feature_extractor = pytest.importorskip("faster_whisper.feature_extractor")
    rng = np.random.default_rng(7)
    samples = tone(440, 5.0, 0.3) + 0.05 * rng.standard_normal(5 * SAMPLE_RATE)
    window = log_mel.last_window(samples)
    window = (window - window.mean()) / np.sqrt(window.var() + 1e-7)
    theirs = feature_extractor.FeatureExtractor(feature_size=N_MELS)(window.astype(np.float32), padding=0)
    ours = whisper_log_mel(samples)
    assert theirs.shape == ours.shape
    assert np.abs(theirs - ours).max() < 1e-4


def frame_by_frame_log_mel(x: np.ndarray) -> np.ndarray:
    """The plain definition, for reference: every frame's FFT, the dense filterbank as a matrix product."""
    padded = np.pad(x, 200, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, 400)[::HOP][: x.size // HOP]
    spectrum = np.fft.rfft(frames * (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)), axis=1)
    mel = (np.abs(spectrum) ** 2 @ mel_filterbank().T).T
    log = np.log10(np.maximum(mel, 1e-10))
    return ((np.maximum(log, log.max() - 8.0) + 4.0) / 4.0).astype(np.float32)


@pytest.mark.parametrize("head", [0, 200, 201, 359, 360, 361, 521, 5000, 100_000, 127_000])
def test_frames_in_the_padding_computed_once_equal_the_frame_by_frame_features(head):
    # A window is a constant run (the padding, normalised) then the speech: the frames wholly inside
    # the run share one spectrum. Every boundary case: the run ends inside the reflection, on a hop, past it.
    rng = np.random.default_rng(head)
    x = np.concatenate([np.full(head, -0.37), 0.2 * rng.standard_normal(WINDOW_SAMPLES - head)])
    ours = log_mel.log_mel_spectrogram(x)
    assert ours.shape == (N_MELS, N_FRAMES)
    assert np.abs(ours - frame_by_frame_log_mel(x)).max() < 1e-5
    in_run = (head - 200) // HOP + 1 if head > 200 else 0  # frames wholly inside the run
    assert (ours[:, :in_run] == ours[:, :1]).all()


@pytest.mark.parametrize("seconds", [0.3, 1.0, 2.5, 7.99, 8.0, 11.0])
def test_short_utterances_get_the_frame_by_frame_features(seconds):
    rng = np.random.default_rng(5)
    samples = np.concatenate([tone(180, seconds / 2, 0.4), 0.1 * rng.standard_normal(int(seconds * SAMPLE_RATE / 2))])
    window = log_mel.last_window(pcm16_floats := np.frombuffer(pcm16(samples), "<i2") / 32768.0)
    window = (window - window.mean()) / np.sqrt(window.var() + 1e-7)
    assert np.abs(whisper_log_mel(pcm16(samples)) - frame_by_frame_log_mel(window)).max() < 1e-5
    assert pcm16_floats.size == int(seconds * SAMPLE_RATE / 2) * 2


def test_the_sparse_filterbank_is_the_dense_one():
    bins, weights, starts = log_mel._sparse_filterbank()
    dense = np.zeros_like(mel_filterbank())
    for m, (start, end) in enumerate(zip(starts, [*starts[1:], bins.size])):
        assert end > start  # every filter covers a bin (np.add.reduceat needs it)
        dense[m, bins[start:end]] = weights[start:end]
    assert np.array_equal(dense, mel_filterbank())


def test_too_little_audio_for_one_frame_is_refused():
    with pytest.raises(ValueError):
        log_mel.log_mel_spectrogram(np.zeros(100))
    assert log_mel.log_mel_spectrogram(np.zeros(HOP * 3)).shape == (N_MELS, 3)


# --- the model wrapper ------------------------------------------------------------------


@pytest.fixture(scope="module")
def model():
    pytest.importorskip("onnxruntime")
    return EndOfTurnModel()


def test_the_model_takes_a_dynamic_batch_of_80_by_800_features(model):
    (only_input,) = model._session.get_inputs()
    assert only_input.name == "input_features"
    assert only_input.type == "tensor(float)"
    assert isinstance(only_input.shape[0], str)  # symbolic: any batch size in one run
    assert only_input.shape[1:] == [80, 800]


def test_predict_returns_one_probability_per_input_in_order(model):
    rng = np.random.default_rng(3)
    inputs = [bytes(3200), pcm16(tone(220, 2.0)), pcm16(0.2 * rng.standard_normal(SAMPLE_RATE)), b""]
    scores = model.predict(inputs)
    assert len(scores) == 4 and all(isinstance(s, float) and 0.0 <= s <= 1.0 for s in scores)
    one_by_one = [model.predict([pcm])[0] for pcm in inputs]
    assert scores == pytest.approx(one_by_one, abs=1e-4)
    assert model.predict([]) == []


def test_a_batch_larger_than_max_batch_is_split_without_changing_results(model):
    small = EndOfTurnModel(max_batch=2)
    inputs = [pcm16(tone(f, 1.0 + f / 1000)) for f in (200, 400, 800, 1600, 3200)]
    assert small.predict(inputs) == pytest.approx(model.predict(inputs), abs=1e-4)


def test_a_missing_model_is_reported_as_unavailable(tmp_path):
    pytest.importorskip("onnxruntime")
    with pytest.raises(TurnModelUnavailable) as caught:
        EndOfTurnModel(tmp_path / "nothing.onnx")
    assert caught.value.reason == "model_missing"


def test_a_changed_model_file_is_refused_before_loading(tmp_path):
    pytest.importorskip("onnxruntime")
    altered = tmp_path / MODEL_PATH.name
    shutil.copyfile(MODEL_PATH, altered)
    with open(altered, "r+b") as f:
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(TurnModelUnavailable) as caught:
        EndOfTurnModel(altered)
    assert caught.value.reason == "model_mismatch"
    assert MODEL_SHA256 in str(caught.value)


def test_a_file_that_is_not_a_model_fails_to_load(tmp_path):
    pytest.importorskip("onnxruntime")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not an onnx model")
    with pytest.raises(TurnModelUnavailable) as caught:
        EndOfTurnModel(junk, expected_sha256=None)
    assert caught.value.reason == "load_failed"


def test_without_onnxruntime_the_model_is_unavailable(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_onnxruntime(name, *args, **kwargs):
        if name == "onnxruntime":
            raise ImportError("No module named 'onnxruntime'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnxruntime)
    with pytest.raises(TurnModelUnavailable) as caught:
        EndOfTurnModel()
    assert caught.value.reason == "onnxruntime_missing"


def test_max_batch_must_be_positive():
    with pytest.raises(ValueError):
        EndOfTurnModel(max_batch=0)
