"""The end-of-turn policy, driven like the engine will drive it: 10 ms VAD ticks, a fake clock, a fake model."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from live.engine.end_of_turn import (
    EndOfTurnDecision,
    EndOfTurnPolicy,
    EndOfTurnSettings,
    ModelStatus,
    Step,
    is_backchannel,
)

TICK_MS = 10


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeModel:
    """Answers each request with the next scripted score (or failure) after `latency_ms`."""

    scores: list[float | str]
    latency_ms: int = 100
    asked: int = 0

    def next_answer(self) -> float | str:
        answer = self.scores[min(self.asked, len(self.scores) - 1)]
        self.asked += 1
        return answer


@dataclass
class Run:
    decision: EndOfTurnDecision
    ended_at_ms: int
    """Timeline position of the END."""
    silence_ms: int
    steps: list[tuple[int, Step]] = field(default_factory=list)


def drive(
    timeline: list[tuple[str, int]],
    model: FakeModel,
    settings: EndOfTurnSettings | None = None,
    status: ModelStatus | None = None,
    answer_waiting: bool = False,
) -> Run:
    """Feed `timeline` (("speech" | "silence", ms), ...) tick by tick until the policy ends the turn."""
    clock = FakeClock()
    policy = EndOfTurnPolicy(settings or EndOfTurnSettings(), clock=clock)
    if answer_waiting:
        policy.answer_waiting()
    pending: list[tuple[float, int, float | str]] = []  # (due, pause id, answer)
    position = silence = 0
    steps: list[tuple[int, Step]] = []
    for kind, length in timeline:
        for _ in range(length // TICK_MS):
            clock.now += TICK_MS / 1000
            position += TICK_MS
            if kind == "speech":
                silence = 0
                policy.on_speech()
                continue
            silence += TICK_MS
            step = policy.on_silence(silence, status or ModelStatus.ready())
            if step is Step.ASK:
                pending.append((clock.now + model.latency_ms / 1000, policy.pause_id, model.next_answer()))
            for due, pause_id, answer in [p for p in pending if p[0] <= clock.now]:
                pending.remove((due, pause_id, answer))
                if isinstance(answer, str):
                    step = policy.on_model_failed(pause_id, answer, silence)
                else:
                    step = policy.on_score(pause_id, answer, silence)
            steps.append((position, step))
            if step is Step.END:
                assert policy.decision is not None
                return Run(policy.decision, position, silence, steps)
    raise AssertionError(f"the turn never ended: {policy!r}")


def test_a_finished_question_ends_as_soon_as_the_model_answers():
    run = drive([("speech", 1500), ("silence", 3000)], FakeModel([0.97], latency_ms=100))
    assert run.decision.reason == "model_done"
    assert run.silence_ms == 300  # asked at 200 ms of silence, answered 100 ms later
    assert run.decision.silence_ms == 300
    assert run.decision.score == 0.97 and run.decision.scores == (0.97,)
    assert run.decision.model_ms == pytest.approx(100.0)
    assert run.decision.fallback is None


def test_a_thinking_pause_does_not_end_the_turn():
    """ "I need to, um," (800 ms pause) "book a table for two." is one turn."""
    model = FakeModel([0.03, 0.96])
    run = drive([("speech", 1200), ("silence", 800), ("speech", 1500), ("silence", 3000)], model)
    assert run.decision.reason == "model_done"
    assert run.decision.scores == (0.03, 0.96)
    assert run.ended_at_ms == 1200 + 800 + 1500 + 300
    assert model.asked == 2  # once per pause, not every tick


def test_not_done_and_then_silent_ends_at_the_long_limit():
    settings = EndOfTurnSettings(max_silence_ms=2000)
    run = drive([("speech", 1000), ("silence", 5000)], FakeModel([0.1]), settings)
    assert run.decision.reason == "max_silence"
    assert run.silence_ms == 2000
    assert run.decision.score == 0.1 and run.decision.fallback is None


def test_while_an_answer_waits_the_long_limit_is_the_fallback_silence():
    """An "uh-huh" over a paused answer that the model finds unfinished: the answer waits 500 ms, not 2.5 s."""
    run = drive([("speech", 400), ("silence", 5000)], FakeModel([0.31]), answer_waiting=True)
    assert run.decision.reason == "max_silence" and run.silence_ms == 500
    assert run.decision.score == 0.31
    sure = drive([("speech", 400), ("silence", 5000)], FakeModel([0.97]), answer_waiting=True)
    assert sure.decision.reason == "model_done" and sure.silence_ms == 300  # a "done" still ends it sooner


def test_the_shorter_limit_holds_for_one_utterance():
    policy = EndOfTurnPolicy(EndOfTurnSettings())
    policy.answer_waiting()
    policy.reset()
    assert policy.on_silence(600, ModelStatus.unavailable("model_off")) is Step.END
    assert policy.decision is not None and policy.decision.reason == "fallback_silence"  # the fixed rule, not the cap


def test_a_score_at_the_threshold_means_done():
    run = drive([("speech", 500), ("silence", 3000)], FakeModel([0.5]))
    assert run.decision.reason == "model_done"


def test_without_the_model_the_fixed_silence_ends_the_turn():
    status = ModelStatus.unavailable("onnxruntime_missing")
    run = drive([("speech", 1000), ("silence", 3000)], FakeModel([0.99]), status=status)
    assert run.decision.reason == "fallback_silence"
    assert run.silence_ms == 500
    assert run.decision.fallback == "model_unavailable"
    assert run.decision.fallback_detail == "onnxruntime_missing"
    assert run.decision.score is None and run.decision.model_ms is None
    assert not any(step is Step.ASK for _, step in run.steps)


def test_an_overloaded_model_is_not_asked():
    model = FakeModel([0.99])
    settings = EndOfTurnSettings(max_model_lag_ms=200)
    run = drive([("speech", 1000), ("silence", 3000)], model, settings, status=ModelStatus.ready(lag_ms=450))
    assert model.asked == 0
    assert (run.decision.reason, run.decision.fallback, run.silence_ms) == ("fallback_silence", "model_overloaded", 500)
    assert "450" in (run.decision.fallback_detail or "")


def test_a_lag_within_the_bound_still_asks():
    run = drive([("speech", 1000), ("silence", 3000)], FakeModel([0.9]), status=ModelStatus.ready(lag_ms=200))
    assert run.decision.reason == "model_done"


def test_a_late_answer_falls_back_at_the_fixed_silence_and_is_then_ignored():
    clock = FakeClock()
    policy = EndOfTurnPolicy(EndOfTurnSettings(), clock=clock)
    assert policy.on_silence(100, ModelStatus.ready()) is Step.LISTEN
    assert policy.on_silence(200, ModelStatus.ready()) is Step.ASK
    asked_for = policy.pause_id
    clock.now += 0.3
    assert policy.on_silence(490, ModelStatus.ready()) is Step.LISTEN
    assert policy.on_silence(500, ModelStatus.ready()) is Step.END
    decided = policy.decision
    assert decided is not None and (decided.reason, decided.fallback) == ("fallback_silence", "model_late")
    assert policy.on_score(asked_for, 0.01, 700) is Step.END
    assert policy.decision is decided  # the late answer changes nothing


def test_a_failed_run_falls_back_for_that_pause():
    run = drive([("speech", 1000), ("silence", 3000)], FakeModel(["inference_failed"], latency_ms=50))
    assert (run.decision.reason, run.decision.fallback, run.silence_ms) == ("fallback_silence", "model_failed", 500)
    assert run.decision.fallback_detail == "inference_failed"


def test_a_failure_reported_after_the_fixed_silence_ends_the_turn_at_once():
    policy = EndOfTurnPolicy(EndOfTurnSettings(), clock=FakeClock())
    assert policy.on_silence(200, ModelStatus.ready()) is Step.ASK
    # a "not done" would keep listening; a failure cannot, so the fixed rule applies now
    assert policy.on_model_failed(policy.pause_id, "boom", 650) is Step.END
    assert policy.decision is not None and policy.decision.silence_ms == 650


def test_an_answer_for_a_pause_the_user_talked_through_is_stale():
    clock = FakeClock()
    policy = EndOfTurnPolicy(EndOfTurnSettings(), clock=clock)
    assert policy.on_silence(200, ModelStatus.ready()) is Step.ASK
    stale = policy.pause_id
    policy.on_speech()  # the user goes on before the answer arrives
    assert policy.on_score(stale, 0.99, 0) is Step.LISTEN
    assert policy.decision is None
    assert policy.on_silence(150, ModelStatus.ready()) is Step.LISTEN
    assert policy.on_silence(200, ModelStatus.ready()) is Step.ASK
    assert policy.on_score(policy.pause_id, 0.2, 300) is Step.LISTEN
    assert policy.on_score(policy.pause_id, 0.99, 310) is Step.LISTEN  # a duplicate answer is ignored
    assert policy.on_silence(2500, ModelStatus.ready()) is Step.END
    assert policy.decision is not None and policy.decision.scores == (0.2,)


def test_a_fallback_holds_for_its_pause_only():
    policy = EndOfTurnPolicy(EndOfTurnSettings(), clock=FakeClock())
    assert policy.on_silence(250, ModelStatus.ready(lag_ms=10_000)) is Step.LISTEN
    policy.on_speech()  # load went down meanwhile; the next pause asks again
    assert policy.on_silence(200, ModelStatus.ready()) is Step.ASK


def test_reset_starts_the_next_utterance():
    policy = EndOfTurnPolicy(EndOfTurnSettings(), clock=FakeClock())
    assert policy.on_silence(200, ModelStatus.ready()) is Step.ASK
    assert policy.on_score(policy.pause_id, 0.98, 320) is Step.END
    assert policy.on_silence(330, ModelStatus.ready()) is Step.END  # stays ended until reset
    policy.reset()
    assert policy.decision is None
    assert policy.on_silence(200, ModelStatus.ready()) is Step.ASK
    assert policy.on_score(policy.pause_id, 0.97, 310) is Step.END
    assert policy.decision is not None and policy.decision.scores == (0.97,)


def test_decision_metrics_are_flat_and_rounded():
    decision = EndOfTurnDecision("model_done", 312, 0.93456, 101.26, scores=(0.1, 0.93456))
    assert decision.as_metrics() == {
        "eot_reason": "model_done",
        "eot_silence_ms": 312,
        "eot_score": 0.935,
        "eot_model_ms": 101.3,
        "eot_fallback": None,
        "eot_fallback_detail": None,
        "eot_pauses_judged": 2,
        "eot_confirmed_by": None,
    }


# --- with speculation: a "done" below the bar is confirmed by the fallback silence ----------------

SPECULATE = EndOfTurnSettings(speculate=True, confirm_threshold=0.96)


def test_a_sure_done_ends_at_once_with_speculation_too():
    run = drive([("speech", 1500), ("silence", 3000)], FakeModel([0.97]), SPECULATE)
    assert run.decision.reason == "model_done" and run.decision.confirmed_by == "score"
    assert run.silence_ms == 300
    assert Step.SPECULATE not in [step for _, step in run.steps]


def test_a_probable_done_speculates_then_the_unsure_silence_confirms_it():
    run = drive([("speech", 1500), ("silence", 3000)], FakeModel([0.8]), SPECULATE)
    assert [p for p, step in run.steps if step is Step.SPECULATE] == [1800]  # the answer: start ahead, once
    assert run.decision.reason == "model_done" and run.decision.confirmed_by == "silence"
    assert run.silence_ms == 1000 and run.decision.score == 0.8
    assert run.decision.as_metrics()["eot_confirmed_by"] == "silence"


def test_speech_before_the_confirming_silence_continues_the_utterance():
    """A thinking pause the model wrongly called done ("The problem is that" 0.95): not a turn yet."""
    timeline = [("speech", 1500), ("silence", 400), ("speech", 1000), ("silence", 3000)]
    run = drive(timeline, FakeModel([0.9, 0.99]), SPECULATE)
    speculated = [p for p, step in run.steps if step is Step.SPECULATE]
    assert speculated == [1800]  # in the first pause; the user went on before its 1000 ms
    assert run.decision.scores == (0.9, 0.99) and run.decision.confirmed_by == "score"
    assert run.ended_at_ms == 2900 + 300


def test_without_speculation_a_probable_done_also_waits_for_the_unsure_silence():
    run = drive([("speech", 1500), ("silence", 3000)], FakeModel([0.8]))
    assert run.decision.confirmed_by == "silence" and run.silence_ms == 1000


def test_a_thinking_pause_the_model_calls_probably_done_stays_one_turn():
    """ "The problem is that" (0.95), 900 ms, "the train was late." (0.99): one turn, not two."""
    timeline = [("speech", 1200), ("silence", 900), ("speech", 1300), ("silence", 3000)]
    run = drive(timeline, FakeModel([0.95, 0.99]))
    assert run.decision.scores == (0.95, 0.99) and run.decision.confirmed_by == "score"
    assert run.ended_at_ms == 1200 + 900 + 1300 + 300


def test_a_not_done_never_speculates():
    run = drive([("speech", 1500), ("silence", 3000)], FakeModel([0.1]), SPECULATE)
    assert Step.SPECULATE not in [step for _, step in run.steps]
    assert run.decision.reason == "max_silence" and run.decision.confirmed_by is None


@pytest.mark.parametrize(
    "fields",
    [
        {"ask_after_ms": 0},
        {"ask_after_ms": 500, "fallback_silence_ms": 500},
        {"fallback_silence_ms": 3000, "max_silence_ms": 2500},
        {"done_threshold": 1.0},
        {"done_threshold": 0.6, "confirm_threshold": 0.5},
        {"max_model_lag_ms": -1},
    ],
)
def test_inconsistent_settings_are_refused(fields):
    with pytest.raises(ValueError):
        EndOfTurnSettings(**fields)


@pytest.mark.parametrize(
    "text",
    [
        "mm-hmm", "Mm-hmm.", "Mhm", "mmm", "Hmm.", "uh-huh", "Uh huh.", "yeah", "Yeah!", "yeahhh", "yep",
        "okay", "OK.", "Okay, okay.", "right", "Right, right.", "I see.", "Got it.", "sure", "all right",
        "alright", "oh, okay", "yeah, I know", "That’s right.",
        "嗯", "嗯嗯。", "恩", "对", "对对对", "对！", "好", "好的", "好的！", "是的", "嗯，对", "哦 好的", "对啊", "没错",
        "明白了", "嗯 OK",
    ],
)  # fmt: skip
def test_backchannels(text):
    assert is_backchannel(text)


@pytest.mark.parametrize(
    "text",
    [
        "", "   ", "...", "？", "no", "No.", "wait", "stop", "Stop!", "yeah but wait", "okay so what about tomorrow",
        "what time is it", "hold on", "yeah yeah yeah yeah yeah", "ok 42", "okay, next one", "right now",
        "好，停一下", "对了，明天呢", "不对", "不是", "好吗", "等一下", "嗯，我想问一下", "好的好的好的好的",
        "oui", "ja",
    ],
)  # fmt: skip
def test_not_backchannels(text):
    assert not is_backchannel(text)
