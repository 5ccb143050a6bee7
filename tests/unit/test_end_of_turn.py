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
    TextCue,
    is_backchannel,
    text_cue,
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
    texts: list[str | None] | None = None,
    text_latency_ms: int = 150,
) -> Run:
    """Feed `timeline` (("speech" | "silence", ms), ...) tick by tick until the policy ends the turn.

    With `texts`, each pause is transcribed as answering ahead does: from its first short pause,
    the next text arriving `text_latency_ms` later (None: the transcription failed; "never": it never comes).
    """
    clock = FakeClock()
    s = settings or EndOfTurnSettings()
    policy = EndOfTurnPolicy(s, clock=clock)
    if answer_waiting:
        policy.answer_waiting()
    pending: list[tuple[float, int, float | str]] = []  # (due, pause id, answer)
    heard: list[tuple[float, int, str | None]] = []  # (due, pause id, transcript)
    texts = list(texts) if texts is not None else None
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
            if texts and silence == s.ask_after_ms:  # the speculation transcribes, before the model is asked
                policy.expect_text()
                text = texts.pop(0)
                if text != "never":
                    heard.append((clock.now + text_latency_ms / 1000, policy.pause_id, text))
            step = policy.on_silence(silence, status or ModelStatus.ready())
            if step is Step.ASK:
                pending.append((clock.now + model.latency_ms / 1000, policy.pause_id, model.next_answer()))
            for due, pause_id, answer in [p for p in pending if p[0] <= clock.now]:
                pending.remove((due, pause_id, answer))
                if isinstance(answer, str):
                    step = policy.on_model_failed(pause_id, answer, silence)
                else:
                    step = policy.on_score(pause_id, answer, silence)
            for due, pause_id, text in [h for h in heard if h[0] <= clock.now]:
                heard.remove((due, pause_id, text))
                step = policy.on_text(pause_id, text, silence)
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


def test_a_pause_after_too_little_speech_is_not_judged():
    """ "Wait," (190 ms voiced) then a breath: the model is not asked; ended there, it would be dropped
    as too short, so only the fallback silence ends it (and speech before then continues it)."""
    policy = EndOfTurnPolicy(EndOfTurnSettings(min_speech_ms=250), clock=FakeClock())
    assert policy.on_silence(224, ModelStatus.ready(), speech_ms=190) is Step.LISTEN
    assert policy.on_silence(512, ModelStatus.ready(), speech_ms=190) is Step.END
    assert policy.decision is not None and policy.decision.reason == "fallback_silence"
    policy.reset()
    assert policy.on_silence(224, ModelStatus.ready(), speech_ms=190) is Step.LISTEN
    policy.on_speech()  # "... what about Sunday?": the same utterance, now long enough
    assert policy.on_silence(224, ModelStatus.ready(), speech_ms=900) is Step.ASK


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
        "eot_text": None,
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


# --- the words of the pause (answering ahead transcribes it) ----------------------------------


def test_an_unsure_done_ends_when_the_words_sound_finished():
    run = drive([("speech", 1500), ("silence", 3000)], FakeModel([0.8]), SPECULATE, texts=["What time is it?"])
    assert run.silence_ms == 350  # the transcript came 150 ms after the short pause, after the score
    assert run.decision.reason == "model_done" and run.decision.confirmed_by == "text"
    assert run.decision.text is TextCue.FINISHED and run.decision.as_metrics()["eot_text"] == "finished"


def test_a_sure_done_waits_for_the_words_and_a_filler_turns_it_unsure():
    run = drive([("speech", 1500), ("silence", 3000)], FakeModel([0.97]), SPECULATE, texts=["I need to, um,"])
    assert Step.SPECULATE in [step for _, step in run.steps]  # probably done: the answer may start meanwhile
    assert run.decision.confirmed_by == "silence" and run.silence_ms == 1000


def test_an_unsure_done_on_an_unfinished_phrase_waits_for_the_user():
    timeline = [("speech", 1200), ("silence", 900), ("speech", 1300), ("silence", 3000)]
    run = drive(timeline, FakeModel([0.9, 0.99]), SPECULATE, texts=["And then we went to the", "the old market."])
    assert Step.SPECULATE not in [step for _, step in run.steps[:200]]  # no answer prepared in the first pause
    assert run.decision.scores == (0.9, 0.99) and run.ended_at_ms == 1200 + 900 + 1300 + 350
    run = drive([("speech", 1500), ("silence", 3000)], FakeModel([0.9]), SPECULATE, texts=["I want to order, um,"])
    assert run.decision.reason == "max_silence" and run.silence_ms == 2500


def test_a_not_done_on_a_finished_sentence_ends_at_the_unsure_silence():
    """The second half after a thinking pause often scores low ("book a table for two people tonight." 0.1)."""
    run = drive([("speech", 1500), ("silence", 3000)], FakeModel([0.1]), SPECULATE,
                texts=["I need to, um, book a table for two people tonight."])  # fmt: skip
    assert run.decision.reason == "text_done" and run.decision.confirmed_by == "silence"
    assert run.silence_ms == 1000
    assert [p for p, step in run.steps if step is Step.SPECULATE] == [1850]  # prepared while the silence runs


def test_words_that_never_come_do_not_hold_the_decision_past_the_fallback_silence():
    run = drive([("speech", 1500), ("silence", 3000)], FakeModel([0.97]), SPECULATE, texts=["never"])
    assert run.decision.confirmed_by == "score" and run.silence_ms == 500 and run.decision.text is None
    run = drive([("speech", 1500), ("silence", 3000)], FakeModel([0.8]), SPECULATE, texts=["never"])
    assert [p for p, step in run.steps if step is Step.SPECULATE] == [1500 + 500]  # the answer starts on the score
    assert run.decision.confirmed_by == "silence" and run.silence_ms == 1000
    run = drive([("speech", 1500), ("silence", 3000)], FakeModel([0.8]), SPECULATE, texts=[None])  # STT failed
    assert run.decision.confirmed_by == "silence" and run.silence_ms == 1000
    assert run.decision.text is TextCue.UNKNOWN


def test_words_that_come_before_the_score_wait_for_it():
    run = drive([("speech", 1500), ("silence", 3000)], FakeModel([0.8], latency_ms=200), SPECULATE,
                texts=["Tell me a joke."], text_latency_ms=20)  # fmt: skip
    assert run.silence_ms == 400 and run.decision.confirmed_by == "text"


@pytest.mark.parametrize(
    ("text", "cue"),
    [
        ("What is the weather like today?", TextCue.FINISHED),
        ("Tell me a joke.", TextCue.FINISHED),
        ("Who are you going with?", TextCue.FINISHED),
        ('He said "hi."', TextCue.FINISHED),
        ("今天天气怎么样？", TextCue.FINISHED),
        ("我要那个。", TextCue.FINISHED),
        ("今天很暖和。", TextCue.FINISHED),
        ("I need to, um,", TextCue.UNFINISHED),
        ("I need to um.", TextCue.UNFINISHED),  # recognisers close fragments with a full stop
        ("And then we went to the", TextCue.UNFINISHED),
        ("Let me think, hmm...", TextCue.UNFINISHED),
        ("I like apples and", TextCue.UNFINISHED),
        ("我想问一下，然后", TextCue.UNFINISHED),
        ("我觉得，嗯", TextCue.UNFINISHED),
        ("So I was thinking that maybe we could", TextCue.UNKNOWN),
        ("ok", TextCue.UNKNOWN),
        ("", TextCue.UNKNOWN),
        ("  ", TextCue.UNKNOWN),
    ],
)
def test_text_cue(text, cue):
    assert text_cue(text) is cue


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
