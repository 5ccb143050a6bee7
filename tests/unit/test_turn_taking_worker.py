"""The end-of-turn model worker (own thread, lazy load, batching, bounded queue, close), the
settings' clamping, and the echo guard's "only while the character's audio played" rule."""

import asyncio
import os
import sys
import threading
import time

import pytest

from live.audio.turn_model import TurnModelUnavailable
from live.audio.vad import SpeechPaused
from live.config import LiveSettings
from live.engine.end_of_turn import EndOfTurnSettings
from live.engine.events import NothingHeard, SendText, SubmitUtterance, TurnMetrics, UserTranscribed
from live.engine.turn_model_worker import CPU_WINDOW_S, NICENESS, TurnModelWorker
from live.engine.turn_taking import TurnTaking
from tests.harness.fake_ports import harness, until  # noqa: F401 (a fixture)


class HeldModel:
    def __init__(self) -> None:
        self.calls: list[list[bytes]] = []
        self.threads: set[str] = set()
        self.hold = threading.Event()
        self.hold.set()
        self.running = threading.Event()
        self.warm_up: list[bytes] | None = None

    def predict(self, batch) -> list[float]:
        self.threads.add(threading.current_thread().name)
        if self.warm_up is None:  # the worker's warm-up run right after loading
            self.warm_up = list(batch)
            return [0.0] * len(batch)
        self.running.set()
        self.hold.wait(10)
        self.calls.append(list(batch))
        return [len(pcm) / 100 for pcm in batch]


async def ready(worker: TurnModelWorker) -> None:
    worker.warm()
    await until(lambda: worker.state != "loading")


async def test_loaded_once_lazily_and_run_on_its_own_thread():
    loads: list[str] = []
    model = HeldModel()

    def load():
        loads.append(threading.current_thread().name)
        return model

    worker = TurnModelWorker(load)
    assert worker.state == "not_loaded" and not worker.status().available and loads == []
    await ready(worker)
    worker.warm()
    assert worker.state == "ready" and len(loads) == 1
    assert model.warm_up == [bytes(32000)]  # one run on 1 s of silence before the first real one
    assert await worker.ask(b"x" * 50) == 0.5
    assert model.threads == set(loads) and loads[0].startswith("live-end-of-turn")
    await worker.aclose()


async def test_requests_that_arrive_together_run_as_one_batch():
    model = HeldModel()
    worker = TurnModelWorker(lambda: model, max_batch=4)
    await ready(worker)
    model.hold.clear()
    first = worker.ask(b"a")
    await asyncio.to_thread(model.running.wait, 5)
    rest = [worker.ask(bytes(n)) for n in (10, 20, 30, 40, 50)]  # queue while the first runs
    model.hold.set()
    scores = await asyncio.gather(first, *rest)
    assert scores == [0.01, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert [len(c) for c in model.calls] == [1, 4, 1]  # batched, at most max_batch at once
    assert worker.stats["batches"] == 3
    await worker.aclose()


async def test_a_full_queue_refuses_at_once_and_reports_overload():
    model = HeldModel()
    worker = TurnModelWorker(lambda: model, max_queue=2)
    await ready(worker)
    model.hold.clear()
    running = worker.ask(b"a")
    await asyncio.to_thread(model.running.wait, 5)
    waiting = [worker.ask(b"b"), worker.ask(b"c")]
    assert worker.status().lag_ms == float("inf")
    refused = worker.ask(b"d")
    with pytest.raises(TurnModelUnavailable) as info:
        await refused
    assert info.value.reason == "queue_full" and worker.stats["refused"] == 1
    model.hold.set()
    assert len(await asyncio.gather(running, *waiting)) == 3
    await worker.aclose()


class BusyModel:
    """Spends real CPU time on its thread per input (the worker's budget counts thread CPU time)."""

    def __init__(self, cpu_s: float) -> None:
        self.cpu_s = cpu_s

    def predict(self, batch) -> list[float]:
        for _ in batch:
            until_cpu = time.thread_time() + self.cpu_s
            while time.thread_time() < until_cpu:
                pass
        return [0.9] * len(batch)


async def test_a_model_over_its_cpu_share_reports_overload_until_the_window_passes():
    now = [100.0]
    worker = TurnModelWorker(lambda: BusyModel(0.05), max_cpu_share=0.01, clock=lambda: now[0])
    await ready(worker)
    assert worker.status().lag_ms == 0.0  # the warm-up run does not count
    assert await worker.ask(b"a") == 0.9
    assert worker.cpu_share() == pytest.approx(0.05 / CPU_WINDOW_S, rel=0.5)
    assert worker.status().available and worker.status().lag_ms == float("inf")  # overloaded: silence rule
    assert worker.describe()["cpu_share"] > 0.01
    now[0] += CPU_WINDOW_S + 0.1
    assert worker.status().lag_ms != float("inf")
    await worker.aclose()


async def test_a_cheap_model_stays_under_its_cpu_share():
    worker = TurnModelWorker(lambda: BusyModel(0.001), max_cpu_share=0.3)
    await ready(worker)
    for _ in range(3):
        await worker.ask(b"a")
    assert worker.status().lag_ms != float("inf")
    await worker.aclose()


class SlowModel:
    """Takes `wall_s` of the (fake) clock per input but almost no CPU: a thread waiting for a core."""

    def __init__(self, now: list[float], wall_s: float) -> None:
        self.now, self.wall_s = now, wall_s

    def predict(self, batch) -> list[float]:
        self.now[0] += self.wall_s * len(batch)
        return [0.9] * len(batch)


async def test_a_model_starved_of_cpu_reports_overload_until_the_window_passes():
    now = [100.0]
    model = SlowModel(now, wall_s=0.0)
    worker = TurnModelWorker(lambda: model, starved_item_ms=300, clock=lambda: now[0])
    await ready(worker)
    model.wall_s = 0.2  # a busy machine, still in time
    await worker.ask(b"a")
    assert not worker.starved() and worker.status().lag_ms != float("inf")
    model.wall_s = 1.5  # the cores are full: the low-priority thread waits for them
    await worker.ask(b"b")
    assert worker.starved() and worker.status().lag_ms == float("inf")  # overloaded: the silence rule
    assert worker.describe()["starved"] is True
    now[0] += CPU_WINDOW_S + 0.1  # the slow runs age out: the next pause asks again (a probe)
    assert not worker.starved() and worker.status().lag_ms != float("inf")
    await worker.aclose()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a thread has its own nice value on Linux only")
async def test_the_model_thread_runs_below_the_servers_other_threads():
    seen: list[int] = []

    class Probe:
        def predict(self, batch):
            seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
            return [0.5] * len(batch)

    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert TurnModelWorker(Probe).niceness == NICENESS > 0  # lowered by default
    worker = TurnModelWorker(Probe, niceness=7)
    await ready(worker)
    await worker.ask(b"a")
    assert seen == [min(19, base + 7)] * 2  # the warm-up run and the request
    assert worker.describe()["niceness"] == seen[0]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base  # the loop's thread is untouched
    await worker.aclose()
    unchanged = TurnModelWorker(Probe, niceness=0)
    await ready(unchanged)
    assert seen[-1] == base and unchanged.describe()["niceness"] is None
    await unchanged.aclose()


async def test_a_request_whose_pause_ended_is_not_run():
    model = HeldModel()
    worker = TurnModelWorker(lambda: model)
    await ready(worker)
    ended: list[int] = []
    taking = TurnTaking(EndOfTurnSettings(), worker, ended.append)
    try:
        model.hold.clear()
        other_session = worker.ask(b"busy")
        await asyncio.to_thread(model.running.wait, 5)
        taking.on_paused(SpeechPaused(pcm=b"paused", at_ms=1000, silence_ms=200, pause_id=1, speech_ms=800))
        assert worker.describe()["queued"] == 1
        taking.on_resumed()  # the user spoke again: that pause's answer would be stale
        taking.on_paused(SpeechPaused(pcm=b"paused again", at_ms=2000, silence_ms=200, pause_id=2, speech_ms=1600))
        model.hold.set()
        await other_session
        await until(lambda: len(model.calls) == 2)
        assert model.calls == [[b"busy"], [b"paused again"]]  # the stale request took no model run
        taking.on_resumed()
        model.hold.clear()  # again, and now the utterance ends (or is discarded) while the request waits
        model.running.clear()
        other_session = worker.ask(b"busy again")
        await asyncio.to_thread(model.running.wait, 5)
        taking.on_paused(SpeechPaused(pcm=b"third", at_ms=500, silence_ms=200, pause_id=5, speech_ms=400))
        assert worker.describe()["queued"] == 1
        taking.reset()
        model.hold.set()
        await other_session
        await asyncio.sleep(0.05)
        assert model.calls[2:] == [[b"busy again"]] and worker.describe()["queued"] == 0
    finally:
        model.hold.set()
        await worker.aclose()


async def test_a_load_failure_makes_it_unavailable_with_the_reason():
    def broken():
        raise OSError("disk on fire")

    worker = TurnModelWorker(broken)
    await ready(worker)
    status = worker.status()
    assert worker.state == "unavailable" and not status.available and status.reason == "load_failed"
    with pytest.raises(TurnModelUnavailable):
        await worker.ask(b"x")
    await worker.aclose()


async def test_close_fails_the_waiting_requests_and_does_not_wait_for_a_run():
    model = HeldModel()
    worker = TurnModelWorker(lambda: model)
    await ready(worker)
    model.hold.clear()
    running = worker.ask(b"a")
    await asyncio.to_thread(model.running.wait, 5)
    waiting = worker.ask(b"b")
    await asyncio.wait_for(worker.aclose(), 2)  # the held run is still in its thread
    for answer in (running, waiting):
        with pytest.raises(TurnModelUnavailable):
            await answer
    assert worker.state == "closed" and not [t for t in asyncio.all_tasks() if t.get_name() == "live-end-of-turn-model"]
    model.hold.set()


def test_settings_keep_the_pause_below_the_fallback_and_the_limit_above_it():
    default = LiveSettings.from_config({})
    assert default.end_of_turn == "model"
    assert (default.end_of_turn_pause_ms, default.end_of_turn_max_silence_ms) == (200, 2500)
    assert default.vad_end_silence_ms == 2500 and default.vad_pause_marks_ms == (200, 500, 1000)
    assert LiveSettings.from_config({"end_of_turn_unsure_ms": 50}).end_of_turn_unsure_ms == 300
    assert LiveSettings.from_config({"end_of_turn_unsure_ms": 9000}).end_of_turn_unsure_ms == 2500  # the long limit
    tight = LiveSettings.from_config(
        {"vad_silence_ms": 150, "end_of_turn_pause_ms": 400, "end_of_turn_max_silence_ms": 100}
    )
    assert tight.end_of_turn_pause_ms == 100 < tight.vad_silence_ms == 150
    assert tight.end_of_turn_max_silence_ms == 500
    long_rule = LiveSettings.from_config({"vad_silence_ms": 4000, "end_of_turn_max_silence_ms": 2500})
    assert long_rule.end_of_turn_max_silence_ms == 4000  # the long limit is never shorter than the rule
    off = LiveSettings.from_config({"end_of_turn": "SILENCE"})
    assert off.end_of_turn == "silence" and off.vad_end_silence_ms == 500 and off.vad_pause_marks_ms == ()
    assert LiveSettings.from_config({"end_of_turn": "guess"}).end_of_turn == "model"


# --- the echo guard -------------------------------------------------------------------

ANSWER = "The weather is sunny and warm today."


async def answered(h) -> None:
    """A first turn whose audio the client is now playing (fake TTS: 10 ms per character)."""
    h.agent.script.append((ANSWER,))
    h.session.handle(SendText("weather?"))
    await h.until(TurnMetrics)


async def test_a_repeat_of_the_answer_while_it_plays_is_dropped_as_echo_with_a_notice(harness):  # noqa: F811
    h = harness()
    await answered(h)
    h.clock.advance(100)  # 100 ms into the 360 ms answer
    h.transcriber.text = "the weather is sunny and warm today"
    h.session.handle(SubmitUtterance(bytes(3200)))  # 100 ms of speech: said while it played
    notices = await h.until(NothingHeard)
    assert notices[0].reason == "echo" and len(h.of(UserTranscribed)) == 1  # only the first turn's text
    assert len(h.agent.runs) == 1


async def test_the_same_words_after_the_answer_finished_playing_are_answered(harness):  # noqa: F811
    h = harness()
    await answered(h)
    h.clock.advance(3000)  # the 360 ms answer ended long ago
    h.transcriber.text = "the weather is sunny and warm today"
    h.agent.script.append(("Yes, it is.",))
    h.session.handle(SubmitUtterance(bytes(3200)))
    users = await h.until(UserTranscribed, 2)
    assert users[-1].text == "the weather is sunny and warm today" and h.of(NothingHeard) == []


async def test_a_failing_warm_up_run_makes_it_unavailable():
    class Broken:
        def predict(self, batch):
            raise TurnModelUnavailable("inference_failed", "bad graph")

    worker = TurnModelWorker(Broken)
    await ready(worker)
    assert worker.state == "unavailable" and worker.status().reason == "inference_failed"
    await worker.aclose()
