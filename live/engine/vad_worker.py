"""Server VAD for every session of a server, in one thread hop per cycle.

One thread hop per microphone chunk per session (the old `_vad_loop`) cost more GIL
than the VAD itself at 50 sessions. Here sessions only append to their stream's queue
(no await, never blocks); one worker task takes the pending audio of every stream,
runs all the end-pointers in one job on its own thread (`feed_streams`: streams on a
shared Silero model are scored in one batch), and hands each stream's events back on
the event loop, in order. A stream may also have a noise suppressor (`noise_suppression`):
it cleans the audio on the same thread, before the endpointer hears it, so the utterance
handed on (to STT and the end-of-turn model) is the cleaned audio.

Ownership: the server holds the `VadWorker`; each session opens one `VadStream` and
closes it. The worker's task starts with the first open stream and ends by itself
when the last one closes; `aclose()` ends everything (plugin unload).

Example:
    >>> stream = worker.open_stream(make_endpointer, on_event, lags)
    >>> stream.push(pcm)     # from the receive loop; events arrive later via on_event
    >>> stream.close()
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from ..audio.denoise import StreamDenoiser
from ..audio.vad import Endpointer, VadEvent
from ..audio.vad_batch import feed_streams
from ..log import logger
from .turn_model_worker import TurnModelWorker


MAX_BACKLOG_BYTES = 5 * 16000 * 2
"""Audio a stream may have waiting (5 s at 16 kHz); past it the oldest chunks are dropped."""
CYCLE_MS = 5.0
"""A cycle starts at most this often: audio that arrives meanwhile joins the same batch."""
DENOISE_BUDGET_CORES = 0.6
"""Noise suppression may use this much of the VAD thread; a stream opened past it goes without
(its audio passes through): one more RNNoise would make every session's VAD late."""
DENOISE_COST_GUESS = 0.09
"""CPU seconds per second of audio of one denoised stream, until measured on this machine
(~0.09 on the project's 2-core box, bench/BENCHMARKS.md)."""


class VadStream:
    """One session's microphone, as seen by the worker. Create with `VadWorker.open_stream`."""

    __slots__ = ("_deliver", "_end_request", "_pending", "_pending_bytes", "_worker", "closed", "denoise_refused",
                 "denoiser", "dropped_chunks", "endpointer", "failed", "lags_ms")  # fmt: skip

    def __init__(self, worker: VadWorker, deliver: Callable[[VadEvent], None], lags_ms: deque[float]) -> None:
        self._worker = worker
        self._deliver = deliver
        self._pending: deque[tuple[bytes, float]] = deque()  # (pcm, queued at)
        self._pending_bytes = 0
        self._end_request: int | None = None  # a pause id: end the utterance if still in that pause
        self.endpointer: Endpointer | None = None  # built off the loop; audio queues meanwhile
        self.denoiser: StreamDenoiser | None = None  # built with it, when the stream asked for one
        self.denoise_refused = False  # asked for one past the worker's CPU budget: passes through
        self.lags_ms = lags_ms
        self.dropped_chunks = 0
        self.failed = False
        self.closed = False

    def __repr__(self) -> str:
        return f"VadStream(pending={self._pending_bytes} B, ready={self.endpointer is not None}, closed={self.closed})"

    @property
    def backlog_bytes(self) -> int:
        return self._pending_bytes

    def push(self, pcm: bytes) -> None:
        """Queue microphone audio (PCM16 at the endpointer's rate); never blocks."""
        if self.closed or self.failed or not pcm:
            return
        self._pending.append((pcm, self._worker.clock()))
        self._pending_bytes += len(pcm)
        while self._pending_bytes > MAX_BACKLOG_BYTES and len(self._pending) > 1:
            # Lagging: drop the oldest audio rather than fall further behind.
            self._pending_bytes -= len(self._pending.popleft()[0])
            self.dropped_chunks += 1
        self._worker.mark(self)

    def end_utterance(self, pause_id: int) -> None:
        """End the current utterance at the next cycle if the user is still silent in pause `pause_id`
        (its `SpeechEnded` comes as usual, after the audio queued before this call); never blocks."""
        if self.closed or self.failed:
            return
        self._end_request = pause_id
        self._worker.mark(self)

    def close(self) -> None:
        """Unregister: no more events; the endpointer (and its model state) is released."""
        if self.closed:
            return
        self.closed = True
        self._pending.clear()
        self._pending_bytes = 0
        self.endpointer = None
        self.denoiser = None  # freed with its last reference: a cycle on the thread may still hold it
        self._worker.forget(self)

    def _take(self) -> tuple[bytes, float, int | None] | None:
        """All pending audio, when its oldest chunk was queued, and the pending end request."""
        if (not self._pending and self._end_request is None) or self.endpointer is None:
            return None
        end, self._end_request = self._end_request, None
        if not self._pending:
            return b"", self._worker.clock(), end
        queued_at = self._pending[0][1]
        pcm = b"".join(chunk for chunk, _ in self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        return pcm, queued_at, end

    def _emit(self, events: list[VadEvent]) -> None:
        for event in events:
            if self.closed:  # an event may close the session
                return
            try:
                self._deliver(event)
            except Exception:
                logger.exception("live VAD: handling %s failed", type(event).__name__)


class VadWorker:
    """Runs the server VAD of all streams: one thread, one hop per cycle."""

    def __init__(
        self,
        *,
        cycle_ms: float = CYCLE_MS,
        clock: Callable[[], float] = time.monotonic,
        denoise_budget_cores: float = DENOISE_BUDGET_CORES,
    ) -> None:
        self.cycle_s = cycle_ms / 1000
        self.denoise_budget_cores = denoise_budget_cores
        self.clock = clock
        self._streams: set[VadStream] = set()
        self._marked: dict[VadStream, None] = {}  # streams with audio waiting, in arrival order
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._told_denoise_off = False
        self._denoised: set[VadStream] = set()  # open streams with a denoiser
        self._denoise_cpu_s = 0.0  # thread CPU spent denoising, and the audio it cleaned
        self._denoise_audio_s = 0.0
        self.denoise_refused = 0  # streams that asked for a denoiser past the budget
        self.closed = False

    def __repr__(self) -> str:
        return f"VadWorker(streams={len(self._streams)}, running={self.running})"

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def streams(self) -> int:
        return len(self._streams)

    @property
    def denoise_cost(self) -> float:
        """CPU seconds per second of audio of one denoised stream: measured once 5 s are cleaned."""
        if self._denoise_audio_s < 5.0:
            return DENOISE_COST_GUESS
        return self._denoise_cpu_s / self._denoise_audio_s

    def denoise_status(self) -> dict[str, float | int]:
        return {
            "noise_suppression_streams": len(self._denoised),
            "noise_suppression_over_budget": self.denoise_refused,
            "noise_suppression_ms_per_s": round(self.denoise_cost * 1000, 1),
        }

    def open_stream(
        self,
        make_endpointer: Callable[[], Endpointer],
        deliver: Callable[[VadEvent], None],
        lags_ms: deque[float] | None = None,
        *,
        denoise: bool = False,
    ) -> VadStream:
        """Register a stream (on the event loop). Its endpointer (and with `denoise`, its noise
        suppressor) is built in the default executor, never on the loop; `deliver` gets its
        events on the loop, in order, and `lags_ms` each cycle's queue -> events lag of its
        oldest audio."""
        if self.closed:
            raise RuntimeError("the VAD worker is closed")
        stream = VadStream(self, deliver, lags_ms if lags_ms is not None else deque(maxlen=1024))
        self._streams.add(stream)
        if denoise and (len(self._denoised) + 1) * self.denoise_cost > self.denoise_budget_cores:
            denoise, stream.denoise_refused = False, True
            self.denoise_refused += 1
            logger.warning(
                "live VAD: noise suppression is at its CPU budget (%d streams, %.2f of a core): this session's "
                "audio passes through", len(self._denoised), len(self._denoised) * self.denoise_cost,
            )  # fmt: skip
        if denoise:
            self._denoised.add(stream)
        loop = asyncio.get_running_loop()
        loop.run_in_executor(None, _build, make_endpointer, denoise).add_done_callback(lambda f: self._ready(stream, f))
        if not self.running:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="live-vad")
            self._wake = asyncio.Event()  # bound to this loop (a reloaded plugin may run on another)
            self._task = asyncio.create_task(self._run(), name="live-vad-worker")
        return stream

    def mark(self, stream: VadStream) -> None:
        """`stream` has audio waiting."""
        self._marked[stream] = None
        self._wake.set()

    def forget(self, stream: VadStream) -> None:
        self._streams.discard(stream)
        self._denoised.discard(stream)
        self._marked.pop(stream, None)
        self._wake.set()  # the task ends when the last stream is gone

    async def aclose(self) -> None:
        """Close every stream, end the task and the thread."""
        self.closed = True
        for stream in list(self._streams):
            stream.close()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def _ready(self, stream: VadStream, made: asyncio.Future) -> None:
        if stream.closed or made.cancelled():
            return
        if made.exception() is not None:
            stream.failed = True
            stream._pending.clear()
            stream._pending_bytes = 0
            self._marked.pop(stream, None)
            logger.error("live VAD: building the endpointer failed: %s", made.exception())
            return
        stream.endpointer, stream.denoiser = made.result()
        if stream.denoiser is not None and not stream.denoiser.active and not self._told_denoise_off:
            self._told_denoise_off = True  # once per worker, not once per session
            logger.warning("live VAD: noise suppression is on but unavailable, audio passes through: %s",
                           stream.denoiser.detail)
        self._wake.set()  # its audio waited in `_marked`

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._executor is not None
        executor = self._executor
        last = 0.0
        while self._streams:
            await self._wake.wait()
            self._wake.clear()
            wait = last + self.cycle_s - self.clock()
            if wait > 0:
                await asyncio.sleep(wait)  # let more audio join this cycle's batch
            last = self.clock()
            batch = []
            for s in list(self._marked):
                taken = s._take()  # None while its endpointer is being built: it stays marked
                if taken is not None:
                    batch.append((s, taken))
                    del self._marked[s]
            if not batch:
                continue
            work = [(s.endpointer, s.denoiser, taken[0]) for s, taken in batch]
            ends = [taken[2] for _, taken in batch]
            job: Future = executor.submit(_cycle, work, ends)
            try:
                results, denoise_cpu_s, denoised_s = await asyncio.wrap_future(job, loop=loop)
            except Exception:
                logger.exception("live VAD: a cycle over %d streams failed; their audio is dropped", len(batch))
                continue
            self._denoise_cpu_s += denoise_cpu_s
            self._denoise_audio_s += denoised_s
            done = self.clock()
            for (stream, (_, queued_at, _end)), events in zip(batch, results):
                if stream.closed:
                    continue
                stream.lags_ms.append((done - queued_at) * 1000)
                stream._emit(events)


def _build(make_endpointer: Callable[[], Endpointer], denoise: bool) -> tuple[Endpointer, StreamDenoiser | None]:
    """A stream's parts, off the loop (the first denoiser imports pyrnnoise: ~1 s)."""
    return make_endpointer(), StreamDenoiser() if denoise else None


def _cycle(
    work: list[tuple[Endpointer, StreamDenoiser | None, bytes]], ends: list[int | None]
) -> tuple[list[list[VadEvent]], float, float]:
    """One cycle on the worker thread: clean the audio where asked, feed it, then act on end requests
    (audio queued before a request was heard before it: a user who spoke again keeps the utterance going).

    Returns each stream's events, and the thread CPU seconds spent denoising and the seconds of audio cleaned.
    """
    started = time.thread_time()
    cleaned = [pcm if denoiser is None else denoiser.process(pcm) for _, denoiser, pcm in work]
    denoise_cpu_s = time.thread_time() - started
    denoised_s = sum(len(pcm) for _, denoiser, pcm in work if denoiser is not None and denoiser.active) / 32000
    results = feed_streams([(ep, pcm) for (ep, _, _), pcm in zip(work, cleaned)])
    for (endpointer, _, _), end, events in zip(work, ends, results):
        if end is not None:
            events.extend(endpointer.end_utterance(end))
    return results, denoise_cpu_s, denoised_s


@dataclass(frozen=True, slots=True)
class ServerVad:
    """What a session needs for server VAD: the shared worker and how to build its endpointer."""

    worker: VadWorker
    make_endpointer: Callable[[], Endpointer]
    end_of_turn: TurnModelWorker | None = None
    """The server's end-of-turn model (None: the silence rule, for `end_of_turn_off_reason`)."""
    end_of_turn_off_reason: str = "model_off"
    noise_suppression: bool = False
    """Clean each stream's audio (RNNoise) before the VAD hears it."""

    def open(self, deliver: Callable[[VadEvent], None], lags_ms: deque[float]) -> VadStream:
        return self.worker.open_stream(self.make_endpointer, deliver, lags_ms, denoise=self.noise_suppression)
