"""The shared VAD worker: one thread for every session's stream, events back on the loop in order."""

import asyncio
import threading
from collections import deque

import numpy as np
import pytest

from live.audio.vad import (
    Endpointer,
    EnergyClassifier,
    SpeechEnded,
    SpeechStarted,
    VadSettings,
)
from live.engine import vad_worker
from live.engine.vad_worker import MAX_BACKLOG_BYTES, ServerVad, VadWorker
from tests.harness.audio import silence_pcm, speech_like_pcm

CHUNK = 1920  # 60 ms of PCM16 at 16 kHz


def utterances(n: int, seed: int = 1) -> bytes:
    """`n` voiced bursts of 1.2 s, each followed by 1 s of silence (EnergyClassifier hears them)."""
    return silence_pcm(0.5) + b"".join(speech_like_pcm(1.2, seed=seed + i) + silence_pcm(1.0) for i in range(n))


def endpointer() -> Endpointer:
    return Endpointer(VadSettings(), EnergyClassifier())


def fed_alone(pcm: bytes) -> list:
    ep = endpointer()
    return ep.feed(pcm)


async def until(condition, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


def chunks(pcm: bytes, size: int = CHUNK):
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


async def test_one_stream_gets_the_events_of_its_audio_in_order():
    worker = VadWorker(cycle_ms=0)
    pcm = utterances(3)
    got: list = []
    lags: deque[float] = deque()
    stream = worker.open_stream(endpointer, got.append, lags)
    await until(lambda: stream.endpointer is not None)  # 7 s of audio: more than a stream may queue
    for i, chunk in enumerate(chunks(pcm)):
        stream.push(chunk)
        if i % 7 == 0:  # let cycles run mid-stream; faster than real time, but within the backlog
            await until(lambda: stream.backlog_bytes < MAX_BACKLOG_BYTES // 2)
    expected = fed_alone(pcm)
    assert [type(e) for e in expected].count(SpeechEnded) == 3
    await until(lambda: len(got) == len(expected))
    assert got == expected
    assert lags and all(lag >= 0 for lag in lags)
    stream.close()
    await until(lambda: not worker.running)


async def test_streams_are_isolated_and_each_keeps_its_order():
    worker = VadWorker(cycle_ms=1)
    clips = [utterances(1, seed=1), silence_pcm(3.0), utterances(2, seed=5)]
    got: list[list] = [[] for _ in clips]
    streams = [worker.open_stream(endpointer, got[i].append) for i in range(len(clips))]
    parts = [chunks(c, size) for c, size in zip(clips, (CHUNK, 640, 3000))]  # different chunk sizes
    for step in range(max(len(p) for p in parts)):
        for stream, p in zip(streams, parts):
            if step < len(p):
                stream.push(p[step])
        if step % 5 == 0:
            await asyncio.sleep(0)
    assert not any(s.dropped_chunks for s in streams)
    expected = [fed_alone(c) for c in clips]
    await until(lambda: [len(g) for g in got] == [len(e) for e in expected])
    assert got == expected
    assert expected[1] == [] and len(expected[2]) > len(expected[0]) > 0
    for stream in streams:
        stream.close()
    await until(lambda: not worker.running)


async def test_audio_waits_for_the_endpointer_which_is_built_off_the_loop():
    worker = VadWorker(cycle_ms=0)
    built = threading.Event()
    release = threading.Event()
    threads: list[threading.Thread] = []

    def slow_factory() -> Endpointer:
        threads.append(threading.current_thread())
        built.set()
        release.wait(10)
        return endpointer()

    pcm = utterances(1)
    got: list = []
    stream = worker.open_stream(slow_factory, got.append)
    for chunk in chunks(pcm):
        stream.push(chunk)  # never blocks, though the endpointer is not ready
    await asyncio.to_thread(built.wait, 10)
    assert threads and threads[0] is not threading.main_thread()
    assert got == [] and stream.backlog_bytes == len(pcm)
    release.set()
    expected = fed_alone(pcm)
    await until(lambda: len(got) == len(expected))
    assert got == expected
    stream.close()


async def test_a_lagging_stream_drops_its_oldest_audio():
    worker = VadWorker(cycle_ms=0)
    release = threading.Event()

    def blocked() -> Endpointer:
        release.wait(10)
        return endpointer()

    stream = worker.open_stream(blocked, lambda _e: None)
    pushed = 0
    for chunk in chunks(silence_pcm(8.0)):  # 8 s queued while the endpointer is not ready
        stream.push(chunk)
        pushed += len(chunk)
    assert stream.backlog_bytes <= MAX_BACKLOG_BYTES
    assert stream.dropped_chunks == (pushed - stream.backlog_bytes) // CHUNK > 0
    kept_ms = stream.backlog_bytes // 32
    release.set()
    await until(lambda: stream.endpointer is not None and stream.backlog_bytes == 0)
    ep = stream.endpointer
    await until(lambda: ep.position_ms >= kept_ms - 32)  # only the newest audio was classified
    assert ep.position_ms <= kept_ms
    stream.close()


async def test_close_unregisters_releases_the_endpointer_and_ends_the_task():
    worker = VadWorker(cycle_ms=0)
    got_a: list = []
    got_b: list = []
    a = worker.open_stream(endpointer, got_a.append)
    b = worker.open_stream(endpointer, got_b.append)
    await until(lambda: a.endpointer is not None and b.endpointer is not None)
    assert worker.running and worker.streams == 2
    a.close()
    assert a.endpointer is None and worker.streams == 1
    for chunk in chunks(utterances(1)):
        a.push(chunk)  # ignored: closed
        b.push(chunk)
    await until(lambda: SpeechEnded in [type(e) for e in got_b])
    assert got_a == []
    assert worker.running  # b is still open
    b.close()
    await until(lambda: not worker.running)
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "live-vad-worker"]
    c = worker.open_stream(endpointer, lambda _e: None)  # a new stream starts it again
    assert worker.running
    c.close()
    await until(lambda: not worker.running)


async def test_events_stop_when_a_session_closes_mid_batch():
    """An event handler that closes the stream (a session closing) gets no further events."""
    worker = VadWorker(cycle_ms=0)
    got: list = []
    stream = None

    def deliver(event) -> None:
        got.append(event)
        stream.close()

    stream = worker.open_stream(endpointer, deliver)
    await until(lambda: stream.endpointer is not None)
    stream.push(utterances(2))  # one push: both utterances' events come out of one cycle
    await until(lambda: got)
    await until(lambda: not worker.running)
    assert [type(e) for e in got] == [SpeechStarted]


async def test_a_failing_handler_or_factory_does_not_stop_other_streams():
    worker = VadWorker(cycle_ms=0)

    def broken_factory() -> Endpointer:
        raise RuntimeError("no model")

    def broken_handler(_event) -> None:
        raise ValueError("handler bug")

    got: list = []
    failing = worker.open_stream(broken_factory, got.append)
    raising = worker.open_stream(endpointer, broken_handler)
    healthy = worker.open_stream(endpointer, got.append)
    await until(lambda: failing.failed and healthy.endpointer is not None)
    pcm = utterances(1)
    for chunk in chunks(pcm):
        for s in (failing, raising, healthy):
            s.push(chunk)
    expected = fed_alone(pcm)
    await until(lambda: len(got) == len(expected))
    assert got == expected
    assert failing.backlog_bytes == 0 and raising.backlog_bytes == 0
    await worker.aclose()


async def test_aclose_mid_cycle_ends_the_task_and_thread(monkeypatch):
    worker = VadWorker(cycle_ms=0)
    entered, release = threading.Event(), threading.Event()
    real_feed = vad_worker.feed_streams

    def slow_feed(work):
        entered.set()
        release.wait(10)
        return real_feed(work)

    monkeypatch.setattr(vad_worker, "feed_streams", slow_feed)
    got: list = []
    stream = worker.open_stream(endpointer, got.append)
    await until(lambda: stream.endpointer is not None)
    stream.push(utterances(1))
    await asyncio.to_thread(entered.wait, 10)
    closing = asyncio.create_task(worker.aclose())
    await asyncio.sleep(0.01)
    release.set()
    await asyncio.wait_for(closing, 10)
    assert stream.closed and not worker.running and worker.streams == 0
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "live-vad-worker"]
    await asyncio.sleep(0.05)
    assert got == []  # the in-flight cycle's events were dropped: the stream is closed
    with pytest.raises(RuntimeError, match="closed"):
        worker.open_stream(endpointer, got.append)


async def test_server_vad_opens_a_stream_on_the_shared_worker():
    worker = VadWorker(cycle_ms=0)
    lags: deque[float] = deque(maxlen=8)
    got: list = []
    stream = ServerVad(worker, endpointer).open(got.append, lags)
    stream.push(utterances(1))
    await until(lambda: SpeechEnded in [type(e) for e in got])
    assert len(lags) >= 1 and worker.streams == 1
    await worker.aclose()
    assert np.isfinite(list(lags)).all()
