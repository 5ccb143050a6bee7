"""Semantic end of turn, wired: the session's server VAD, the end-of-turn policy and the model worker.

A real VAD worker and endpointer (energy classifier) hear synthetic speech; the end-of-turn
model is a fake whose scores the test scripts and whose runs it can hold. Audio is pushed in
steps, so the stream time at which each pause is reported is exact; the session's clock is fake.
"""

import asyncio
import threading
import time
from dataclasses import replace

import pytest

from live.audio.turn_model import TurnModelUnavailable
from live.audio.vad import (
    Endpointer,
    EnergyClassifier,
    SpeechEnded,
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    VadSettings,
)
from live.config import LiveSettings
from live.engine.events import SpeechDetected, TurnMetrics, UserTranscribed
from live.engine.turn_model_worker import TurnModelWorker
from live.engine.vad_worker import ServerVad, VadWorker
from tests.harness.audio import silence_pcm, speech_like_pcm
from tests.harness.fake_ports import harness, until  # noqa: F401 (a fixture)

SPEECH = speech_like_pcm(1.2, seed=4)


class FakeModel:
    """Scores in the order scripted; a run can be held until the test releases it."""

    def __init__(self, *scores: float) -> None:
        self.scores = list(scores)
        self.batches: list[int] = []
        self.hold = threading.Event()
        self.hold.set()
        self.running = threading.Event()
        self.warm_up: list[bytes] | None = None

    def predict(self, batch) -> list[float]:
        if self.warm_up is None:  # the worker's warm-up run right after loading: it times one input
            self.warm_up = list(batch)
            time.sleep(0.12)  # what the real model costs on one core
            return [0.0] * len(batch)
        self.running.set()
        self.hold.wait(10)
        self.batches.append(len(batch))
        return [self.scores.pop(0) if self.scores else 0.9 for _ in batch]


def settings(**fields) -> LiveSettings:
    """Speculation off unless asked: these tests are about when the turn ends (test_turn_taking_speculation.py)."""
    return replace(LiveSettings(), **{"end_of_turn_speculation": False, **fields})


def make_endpointer(live: LiveSettings):
    vad = VadSettings(silence_ms=live.vad_end_silence_ms, pause_marks_ms=live.vad_pause_marks_ms)
    return lambda: Endpointer(vad, EnergyClassifier())


@pytest.fixture
async def servers():
    """(VadWorker, TurnModelWorker) pairs, closed after the test."""
    made: list = []

    def make(load):
        pair = (VadWorker(cycle_ms=0), TurnModelWorker(load))
        made.append(pair)
        return pair

    yield make
    for vad, model in made:
        await vad.aclose()
        await model.aclose()


async def session_with(harness, servers, load, live: LiveSettings | None = None):  # noqa: F811
    live = live or settings()
    vad, model = servers(load)
    h = harness(live, vad=ServerVad(vad, make_endpointer(live), model))
    await until(lambda: h.session._vad_stream.endpointer is not None and model.state != "loading")
    return h, model


def metrics_extra(h) -> dict:
    return h.of(TurnMetrics)[-1].extra


async def speak(h, pcm: bytes, chunk: int = 1920) -> None:
    """Stream `pcm` as a microphone would, 60 ms at a time, each chunk heard before the next."""
    stream = h.session._vad_stream
    for i in range(0, len(pcm), chunk):
        stream.push(pcm[i : i + chunk])
        await until(lambda: stream.backlog_bytes == 0)
        await asyncio.sleep(0.003)  # the cycle's events (and a model answer) reach the session


async def test_the_model_says_done_at_the_short_pause_and_the_turn_ends_at_once(harness, servers):  # noqa: F811
    fake = FakeModel(0.97)
    h, model = await session_with(harness, servers, lambda: fake)
    h.agent.script.append(("Sure.",))
    await speak(h, silence_pcm(0.3) + SPEECH + silence_pcm(0.25))  # a pause of 250 ms: asked at ~210 ms
    await h.until(UserTranscribed)
    extra = (await h.until(TurnMetrics))[0].extra
    assert extra["eot_mode"] == "model" and extra["eot_reason"] == "model_done"
    assert extra["eot_score"] == 0.97 and extra["eot_fallback"] is None and extra["eot_pauses_judged"] == 1
    assert 200 <= extra["eot_silence_ms"] < 500  # well before the 500 ms silence rule
    assert fake.batches == [1] and model.stats["asked"] == 1


async def test_not_done_keeps_listening_until_the_long_limit(harness, servers):  # noqa: F811
    fake = FakeModel(0.03)
    live = settings(end_of_turn_max_silence_ms=1500)
    h, _ = await session_with(harness, servers, lambda: fake, live)
    h.agent.script.append(("Sure.",))
    await speak(h, silence_pcm(0.3) + SPEECH + silence_pcm(0.3))
    await until(lambda: fake.batches == [1])
    await speak(h, silence_pcm(0.9))  # 1.2 s of silence: past the 500 ms rule, short of the limit
    assert h.of(UserTranscribed) == [] and h.session.hearing_user
    await speak(h, silence_pcm(0.4))
    extra = (await h.until(TurnMetrics))[0].extra
    assert extra["eot_reason"] == "max_silence" and extra["eot_silence_ms"] >= 1500
    assert extra["eot_score"] == 0.03 and extra["eot_fallback"] is None


async def test_speech_after_a_not_done_pause_continues_the_same_utterance(harness, servers):  # noqa: F811
    fake = FakeModel(0.02, 0.97)
    h, _ = await session_with(harness, servers, lambda: fake)
    h.agent.script.append(("Sure.",))
    await speak(h, silence_pcm(0.3) + SPEECH + silence_pcm(0.3))
    await until(lambda: len(fake.batches) == 1)
    await speak(h, silence_pcm(0.3) + speech_like_pcm(0.8, seed=9) + silence_pcm(0.3))  # a 900 ms thinking pause
    extra = (await h.until(TurnMetrics))[0].extra
    assert len(h.of(UserTranscribed)) == 1 and fake.batches == [1, 1]
    assert extra["eot_reason"] == "model_done" and extra["eot_pauses_judged"] == 2
    assert [e.state for e in h.of(SpeechDetected)] == ["speech_start", "speech_end"]


async def test_a_missing_model_falls_back_to_the_silence_rule_and_says_why(harness, servers):  # noqa: F811
    def missing():
        raise TurnModelUnavailable("model_missing", "no file")

    h, model = await session_with(harness, servers, missing)
    assert model.state == "unavailable" and model.reason == "model_missing"
    h.agent.script.append(("Sure.",))
    await speak(h, silence_pcm(0.3) + SPEECH + silence_pcm(0.3))
    assert h.of(UserTranscribed) == []  # 300 ms: the silence rule waits for 500
    await speak(h, silence_pcm(0.3))
    extra = (await h.until(TurnMetrics))[0].extra
    assert extra["eot_reason"] == "fallback_silence" and extra["eot_fallback"] == "model_unavailable"
    assert extra["eot_fallback_detail"] == "model_missing" and 500 <= extra["eot_silence_ms"] < 600


async def test_an_overloaded_model_is_not_asked_and_the_silence_rule_ends_the_turn(harness, servers):  # noqa: F811
    fake = FakeModel()
    h, model = await session_with(harness, servers, lambda: fake)
    fake.hold.clear()
    others = [model.ask(SPEECH)]  # other sessions: one running, three waiting behind it (~120 ms each)
    await asyncio.to_thread(fake.running.wait, 5)
    others += [model.ask(SPEECH) for _ in range(3)]
    assert model.status().lag_ms > 250
    h.agent.script.append(("Sure.",))
    await speak(h, silence_pcm(0.3) + SPEECH + silence_pcm(0.6))
    extra = (await h.until(TurnMetrics))[0].extra
    assert extra["eot_reason"] == "fallback_silence" and extra["eot_fallback"] == "model_overloaded"
    assert model.stats["asked"] == 4  # this session never queued behind them
    fake.hold.set()
    assert len(await asyncio.gather(*others)) == 4


async def test_a_model_that_answers_too_late_falls_back_at_the_silence_rule(harness, servers):  # noqa: F811
    fake = FakeModel(0.99)
    h, _ = await session_with(harness, servers, lambda: fake)
    fake.hold.clear()
    h.agent.script.append(("Sure.",))
    await speak(h, silence_pcm(0.3) + SPEECH + silence_pcm(0.25))
    await asyncio.to_thread(fake.running.wait, 5)
    await speak(h, silence_pcm(0.3))
    extra = (await h.until(TurnMetrics))[0].extra
    assert extra["eot_reason"] == "fallback_silence" and extra["eot_fallback"] == "model_late"
    fake.hold.set()
    await asyncio.sleep(0.05)
    assert len(h.of(UserTranscribed)) == 1  # the late "done" did not end anything else


async def test_a_failing_model_run_falls_back_for_that_pause(harness, servers):  # noqa: F811
    class Broken:
        warmed = False

        def predict(self, batch):
            if not self.warmed:
                self.warmed = True
                return [0.0]
            raise TurnModelUnavailable("inference_failed", "boom")

    h, model = await session_with(harness, servers, Broken)
    h.agent.script.append(("Sure.",))
    await speak(h, silence_pcm(0.3) + SPEECH + silence_pcm(0.25))
    await until(lambda: model.stats["failed"] == 1)
    await speak(h, silence_pcm(0.3))
    extra = (await h.until(TurnMetrics))[0].extra
    assert extra["eot_fallback"] == "model_failed" and extra["eot_fallback_detail"] == "inference_failed"


async def test_the_turn_clock_starts_at_the_last_voiced_frame(harness, servers):  # noqa: F811
    fake = FakeModel(0.02)
    live = settings(end_of_turn_max_silence_ms=1200)
    h, _ = await session_with(harness, servers, lambda: fake, live)
    h.agent.script.append(("Sure.",))
    await speak(h, silence_pcm(0.3) + SPEECH + silence_pcm(1.3))
    metrics = (await h.until(TurnMetrics))[0]
    assert metrics.timeline["speech_end"] == 0
    # the wait is on the timeline: the turn was decided after the long limit's silence
    assert metrics.timeline["eot_decided"] == metrics.extra["eot_silence_ms"] >= 1200


async def test_silence_mode_never_asks_the_model_and_ends_at_the_fixed_silence(harness, servers):  # noqa: F811
    fake = FakeModel(0.99)
    live = settings(end_of_turn="silence")
    h, model = await session_with(harness, servers, lambda: fake, live)
    h.agent.script.append(("Sure.",))
    await speak(h, silence_pcm(0.3) + SPEECH + silence_pcm(0.6))
    extra = (await h.until(TurnMetrics))[0].extra
    assert extra["eot_mode"] == "silence" and extra["eot_reason"] == "silence"
    assert 500 <= extra["eot_silence_ms"] < 600
    assert model.state == "not_loaded" and fake.batches == [] and fake.warm_up is None


# --- the endpointer's side ------------------------------------------------------------


def test_pauses_are_reported_at_each_mark_and_a_resumption_is_told():
    ep = Endpointer(VadSettings(silence_ms=2000, pause_marks_ms=(200, 500)), EnergyClassifier())
    events = ep.feed(silence_pcm(0.3) + SPEECH + silence_pcm(0.6) + speech_like_pcm(0.6, seed=2))
    kinds = [type(e) for e in events]
    assert kinds[:1] == [SpeechStarted] and kinds.count(SpeechPaused) == 2 and SpeechResumed in kinds
    first, second = [e for e in events if isinstance(e, SpeechPaused)]
    assert 200 <= first.silence_ms < 240 and 500 <= second.silence_ms < 540
    assert first.pause_id == second.pause_id and len(second.pcm) > len(first.pcm)
    resumed = next(e for e in events if isinstance(e, SpeechResumed))
    assert resumed.pause_id == first.pause_id and ep.pause_id != first.pause_id
    assert not any(isinstance(e, SpeechEnded) for e in events)


def test_end_utterance_ends_only_the_pause_it_names():
    ep = Endpointer(VadSettings(silence_ms=2000, pause_marks_ms=(200,)), EnergyClassifier())
    pause = next(e for e in ep.feed(silence_pcm(0.3) + SPEECH + silence_pcm(0.25)) if isinstance(e, SpeechPaused))
    assert ep.end_utterance(pause.pause_id + 1) == []  # an older or other pause: nothing
    (ended,) = ep.end_utterance(pause.pause_id)
    assert isinstance(ended, SpeechEnded) and not ended.forced and 200 <= ended.silence_ms < 300
    assert not ep.in_speech and ep.end_utterance(pause.pause_id) == []

    ep.feed(SPEECH + silence_pcm(0.25))
    stale = ep.pause_id
    ep.feed(speech_like_pcm(0.3, seed=3))  # the user spoke again before the request was acted on
    assert ep.end_utterance(stale) == [] and ep.in_speech


def test_without_marks_the_endpointer_behaves_as_before():
    plain = Endpointer(VadSettings(), EnergyClassifier()).feed(silence_pcm(0.3) + SPEECH + silence_pcm(0.7))
    assert [type(e) for e in plain] == [SpeechStarted, type(plain[1]), SpeechEnded]
    assert plain[-1].silence_ms >= 500


async def test_an_end_decided_just_before_the_user_speaks_again_does_not_cut_the_utterance():
    """The model says done, but the endpointer hears more speech before it acts on the request."""
    from live.engine.end_of_turn import EndOfTurnSettings
    from live.engine.turn_taking import TurnTaking

    requests: list[int] = []
    ep = Endpointer(VadSettings(silence_ms=2500, pause_marks_ms=(200, 500)), EnergyClassifier())
    taking = TurnTaking(EndOfTurnSettings(), None, requests.append, unavailable_reason="model_missing")
    events = ep.feed(silence_pcm(0.3) + SPEECH + silence_pcm(0.55))
    for event in events:
        if isinstance(event, SpeechPaused):
            taking.on_paused(event)
    assert len(requests) == 1 and taking.policy.decision is not None  # fallback at 500 ms: end asked
    resumed = ep.feed(speech_like_pcm(0.5, seed=5))  # ... but the user went on first
    assert ep.end_utterance(requests[0]) == [] and any(isinstance(e, SpeechResumed) for e in resumed)
    taking.on_resumed()
    assert taking.policy.decision is None
    for event in ep.feed(silence_pcm(0.55)):
        if isinstance(event, SpeechPaused):
            taking.on_paused(event)
    assert len(requests) == 2
    (ended,) = ep.end_utterance(requests[1])
    fields = taking.on_ended(ended)
    assert fields["eot_reason"] == "fallback_silence" and fields["eot_fallback_detail"] == "model_missing"
