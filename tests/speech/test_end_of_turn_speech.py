"""The end-of-turn model on real (Piper) speech, the policy driven by Silero VAD and the model,
and backchannels in real Whisper transcripts.

Piper, not eSpeak: smart-turn judges intonation, and eSpeak's robotic prosody gives it
unreliable scores. The joe voice runs with its sampling noise off, so every run hears
identical audio.
"""

from __future__ import annotations

import numpy as np
import pytest

from live.audio.resample import resample_pcm16
from live.audio.turn_model import EndOfTurnModel
from live.audio.vad import SileroClassifier
from live.engine.end_of_turn import (
    EndOfTurnDecision,
    EndOfTurnPolicy,
    EndOfTurnSettings,
    ModelStatus,
    Step,
    is_backchannel,
)

pytestmark = pytest.mark.speech

COMPLETE = [
    "What is the weather like today?",
    "How far is the moon from the earth?",
    "Tell me a joke.",
    "What time is it?",
    "Could you turn off the lights in the kitchen?",
]
UNFINISHED = [
    "I need to, um,",
    "So I was thinking that maybe we could",
    "And then we went to the",
]
ASK_PAUSE = bytes(2 * 3200)
"""200 ms of silence: what the policy has heard when it asks the model."""


@pytest.fixture(scope="module")
def model():
    pytest.importorskip("onnxruntime")
    return EndOfTurnModel()


@pytest.fixture(scope="module")
def say(piper):
    def synthesize(text: str) -> bytes:
        return resample_pcm16(piper.synthesize(text), piper.sample_rate, 16000)

    return synthesize


def with_noise(pcm: bytes, dbfs: float = -50.0, seed: int = 0) -> bytes:
    """White noise at `dbfs` RMS under the whole clip, as from a quiet room."""
    x = np.frombuffer(pcm, "<i2").astype(np.float64)
    noise = np.random.default_rng(seed).standard_normal(x.size) * 32768 * 10 ** (dbfs / 20)
    return np.clip(np.round(x + noise), -32768, 32767).astype("<i2").tobytes()


def test_finished_questions_score_high_and_unfinished_phrases_low(model, say):
    utterances = [say(text) + ASK_PAUSE for text in COMPLETE + UNFINISHED]
    scores = dict(zip(COMPLETE + UNFINISHED, model.predict(utterances)))  # one batched run
    assert {text: s for text, s in scores.items() if text in COMPLETE and s <= 0.5} == {}
    assert {text: s for text, s in scores.items() if text in UNFINISHED and s >= 0.5} == {}


def test_scores_hold_as_synthesized_and_in_quiet_room_noise(model, say):
    clean = [say(text) for text in COMPLETE[:1] + UNFINISHED[:2]]
    noisy = [with_noise(pcm + ASK_PAUSE) for pcm in clean]
    for scores in (model.predict(clean), model.predict(noisy)):
        done, *unfinished = scores
        assert done > 0.5
        assert max(unfinished) < 0.5


def test_a_batch_scores_each_utterance_as_alone(model, say):
    utterances = [say(COMPLETE[0]) + ASK_PAUSE, say(UNFINISHED[0]) + ASK_PAUSE]
    together = model.predict(utterances)
    alone = [model.predict([pcm])[0] for pcm in utterances]
    assert together == pytest.approx(alone, abs=1e-4)


def stream_through_policy(
    pcm: bytes, model: EndOfTurnModel, settings: EndOfTurnSettings
) -> tuple[EndOfTurnDecision, int]:
    """Run `pcm` as a microphone: Silero marks voiced 32 ms frames, the policy counts the
    silence since the last one and asks the real model about the audio heard so far.
    Returns the decision and the stream position (ms) where the turn ended."""
    samples = np.frombuffer(pcm, "<i2")
    vad = SileroClassifier()
    policy = EndOfTurnPolicy(settings)
    voiced = heard = False
    silence_ms = 0
    frame = vad.frame_samples
    for start in range(0, samples.size - frame + 1, frame):
        p = vad.speech_probability(samples[start : start + frame])
        position_ms = (start + frame) * 1000 // 16000
        voiced = p >= (0.35 if voiced else 0.5)  # the endpointer's hysteresis
        if voiced:
            heard, silence_ms = True, 0
            policy.on_speech()
            continue
        if not heard:
            continue
        silence_ms += frame * 1000 // 16000
        step = policy.on_silence(silence_ms, ModelStatus.ready())
        if step is Step.ASK:
            (score,) = model.predict([pcm[: 2 * (start + frame)]])
            step = policy.on_score(policy.pause_id, score, silence_ms)
        if step is Step.END:
            assert policy.decision is not None
            return policy.decision, position_ms
    raise AssertionError(f"the turn never ended: {policy!r}")


def test_a_spoken_question_ends_the_turn_at_the_first_short_pause(model, say):
    settings = EndOfTurnSettings(ask_after_ms=200, fallback_silence_ms=500, max_silence_ms=2500)
    decision, _ = stream_through_policy(say(COMPLETE[0]) + bytes(2 * 3 * 16000), model, settings)
    assert decision.reason == "model_done"
    assert decision.scores == (decision.score,) and decision.score > 0.5
    assert decision.silence_ms < settings.fallback_silence_ms  # sooner than the fixed rule


def test_an_unfinished_phrase_waits_for_the_long_limit(model, say):
    settings = EndOfTurnSettings(ask_after_ms=200, fallback_silence_ms=500, max_silence_ms=2000)
    decision, _ = stream_through_policy(say(UNFINISHED[0]) + bytes(2 * 3 * 16000), model, settings)
    assert decision.reason == "max_silence"
    assert decision.silence_ms >= 2000
    assert decision.score is not None and decision.score < 0.5


@pytest.mark.parametrize(
    ("spoken", "backchannel"),
    [
        ("Yeah.", True),
        ("Okay.", True),
        ("Right, right.", True),
        ("I see.", True),
        ("Yeah, yeah.", True),
        ("Wait, stop.", False),
        ("No, that's wrong.", False),
        ("Okay, but what about tomorrow?", False),
    ],
)
def test_backchannels_are_recognised_in_real_transcripts(piper, whisper, spoken, backchannel):
    """What Whisper writes for spoken acknowledgements (its casing and punctuation vary).
    Piper cannot say "mm-hmm" (Whisper hears "in a month."), so it is not spoken here."""
    transcript = whisper.transcribe_pcm16(piper.synthesize(spoken), piper.sample_rate)
    assert is_backchannel(transcript) is backchannel, transcript
