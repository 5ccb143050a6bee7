"""The end-of-turn model for every session of a server, on its own thread.

One model call costs ~110 ms of a core: on the shared VAD thread it would stall every
session's VAD, so the model gets a thread of its own (a single-thread executor). It is
loaded there lazily, the first time a session wants it (`warm()`), once per server.
Sessions `ask(pcm)` and get a future; the requests that queue up while a run is busy go
together as one batched `predict`. The queue is bounded, and `status()` tells the
end-of-turn policy how long a request asked now would wait (`lag_ms`): past the policy's
bound it is overloaded and falls back to the silence rule instead of asking. It is also
overloaded while its runs took more than `max_cpu_share` of a core over the last few seconds:
the model must not take the core that every session's VAD and sockets need (measured: without
this cap, at 100 streaming sessions the model's thread pushed VAD lag p99 from 20 to 125 ms).

Its thread also runs at a lower OS priority (`niceness`, Linux): the VAD thread, the event loop
and the sockets always get a busy core first, and the model the CPU they leave. So the cores
being full shows as the model's runs taking far longer than the CPU they use (`starved`):
its answers would come after the fallback silence, so that is overloaded too. Both judgements
look at the runs of the last `CPU_WINDOW_S` only: once they age out, the next pause asks again
(one probe per window while the server stays loaded).

Ownership: the server holds the worker and ends it with `aclose()` (plugin unload):
pending futures fail with `TurnModelUnavailable("closed")`, the thread is not waited for
(a run in progress finishes on its own, at most one batch).

Example:
    >>> worker = TurnModelWorker(EndOfTurnModel)      # nothing loaded yet
    >>> worker.warm()                                 # a session with mode=model opened
    >>> if worker.status().available:
    ...     score = await worker.ask(pcm)             # bounded by the caller (the policy's fallback)
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal, Protocol

from ..audio.turn_model import TurnModelUnavailable
from ..log import logger
from .end_of_turn import ModelStatus

MAX_QUEUE = 8
"""Requests waiting at most; a fuller queue means overloaded (~110 ms each on one core)."""
MAX_BATCH = 4
"""Requests run together at most: a batch costs the sum of its inputs, so a big one only delays all."""
DEFAULT_ITEM_MS = 120.0
"""Cost of one input before any was measured."""
MAX_CPU_SHARE = 0.3
"""The share of one core the model's runs may take (over `CPU_WINDOW_S`) before it counts as overloaded."""
CPU_WINDOW_S = 3.0
NICENESS = 10
"""How much lower the model's thread runs than the server's other threads (Linux `nice`, 0-19): its
weight is then ~1/10 of theirs, so it takes mostly the CPU that VAD, loop and sockets leave."""
STARVED_ITEM_MS = 300.0
"""Overloaded when the runs of the window took longer than this per input in wall time: the cores
are full and the answer would come after the fallback silence (500 ms, asked at 200 ms)."""

ModelState = Literal["not_loaded", "loading", "ready", "unavailable", "closed"]


class TurnModel(Protocol):
    def predict(self, batch: Sequence[bytes]) -> list[float]: ...


class TurnModelWorker:
    """Runs `load()`'s model on one thread, batching concurrent requests."""

    def __init__(
        self,
        load: Callable[[], TurnModel],
        *,
        max_queue: int = MAX_QUEUE,
        max_batch: int = MAX_BATCH,
        max_cpu_share: float = MAX_CPU_SHARE,
        niceness: int = NICENESS,
        starved_item_ms: float = STARVED_ITEM_MS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self.max_queue = max_queue
        self.max_batch = max_batch
        self.max_cpu_share = max_cpu_share
        self.niceness = niceness
        self.starved_item_ms = starved_item_ms
        self.thread_niceness: int | None = None  # what the thread got (None: not started, or not lowered)
        self.clock = clock
        self.state: ModelState = "not_loaded"
        self.reason: str | None = None  # why unavailable: TurnModelUnavailable.reason or "load_failed"
        self._model: TurnModel | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._loading: asyncio.Future | None = None
        self._queue: deque[tuple[bytes, asyncio.Future[float], float]] = deque()  # (pcm, answer, queued at)
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._running_since: float | None = None  # a batch is running since (clock), of `_running_items`
        self._running_items = 0
        self.item_ms = DEFAULT_ITEM_MS  # moving average of one input's cost
        self._runs: deque[tuple[float, float, float, int]] = deque()  # recent runs: (ended at, CPU s, wall s, inputs)
        self.stats = {"asked": 0, "batches": 0, "failed": 0, "refused": 0}

    def __repr__(self) -> str:
        return f"TurnModelWorker({self.state}, queued={len(self._queue)})"

    # ------------------------------------------------------------ state

    def warm(self) -> None:
        """Start loading the model on the worker's thread (on the loop; returns at once)."""
        if self.state != "not_loaded":
            return
        self.state = "loading"
        loop = asyncio.get_running_loop()
        self._loading = asyncio.wrap_future(self._thread().submit(self._load_and_warm_up), loop=loop)
        self._loading.add_done_callback(self._loaded)

    def _load_and_warm_up(self) -> TurnModel:
        """On the worker's thread: load, then one run on silence (an ONNX session's first run is
        several times slower than the next ones: the first user's pause must not pay for it)."""
        model = self._load()
        started = self.clock()
        model.predict([bytes(2 * 16000)])
        self.item_ms = (self.clock() - started) * 1000
        return model

    def _loaded(self, made: asyncio.Future) -> None:
        self._loading = None
        if self.state == "closed":
            return
        if made.cancelled():
            self.state, self.reason = "unavailable", "load_cancelled"
            return
        exc = made.exception()
        if exc is None:
            self._model = made.result()
            self.state = "ready"
            logger.info("live end of turn: model loaded")
            return
        self.state = "unavailable"
        self.reason = exc.reason if isinstance(exc, TurnModelUnavailable) else "load_failed"
        logger.warning("live end of turn: the model is unavailable, using the silence rule: %s", exc)

    def status(self) -> ModelStatus:
        """Whether a request asked now would be answered, and after how long a wait."""
        if self.state != "ready":
            return ModelStatus.unavailable(self.reason or f"model_{self.state}")
        if len(self._queue) >= self.max_queue or self.cpu_share() > self.max_cpu_share or self.starved():
            return ModelStatus(True, float("inf"))
        return ModelStatus.ready(self.lag_ms())

    def cpu_share(self) -> float:
        """The share of a core the model's finished runs used over the last `CPU_WINDOW_S`.

        CPU time of the model's thread, not wall time: a busy machine slows a run down
        without making the model itself cost more."""
        return sum(cpu_s for _, cpu_s, _, _ in self._recent_runs()) / CPU_WINDOW_S

    def starved(self) -> bool:
        """Whether the recent runs waited for a core so long that answers come too late
        (wall time per input over `starved_item_ms`; the thread yields to every other one)."""
        runs = self._recent_runs()
        inputs = sum(n for _, _, _, n in runs)
        return inputs > 0 and sum(wall_s for _, _, wall_s, _ in runs) * 1000 / inputs > self.starved_item_ms

    def _recent_runs(self) -> deque[tuple[float, float, float, int]]:
        now = self.clock()
        while self._runs and self._runs[0][0] < now - CPU_WINDOW_S:
            self._runs.popleft()
        return self._runs

    def lag_ms(self) -> float:
        """How far behind the worker is: the estimated wait before a request asked now starts
        running, or how long the oldest waiting request has waited already, if longer."""
        now = self.clock()
        wait = len(self._queue) * self.item_ms
        if self._running_since is not None:
            done_at = self._running_since + self._running_items * self.item_ms / 1000
            wait += max(0.0, (done_at - now) * 1000)
        waited = (now - self._queue[0][2]) * 1000 if self._queue else 0.0
        return max(wait, waited)

    def describe(self) -> dict[str, object]:
        return {
            "state": self.state,
            "reason": self.reason,
            "queued": len(self._queue),
            "lag_ms": round(self.lag_ms(), 1),
            "cpu_share": round(self.cpu_share(), 3),
            "starved": self.starved(),
            "item_ms": round(self.item_ms, 1),
            "niceness": self.thread_niceness,
            **self.stats,
        }

    # ------------------------------------------------------------ requests

    def ask(self, pcm: bytes) -> asyncio.Future[float]:
        """The probability that this utterance (PCM16 16 kHz) is finished, later.

        The future fails with `TurnModelUnavailable` when the model cannot answer (not
        ready, queue full, run failed, worker closed). Never blocks; never waits itself.
        """
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[float] = loop.create_future()
        if self.state != "ready" or len(self._queue) >= self.max_queue:
            self.stats["refused"] += 1
            if self.state == "ready":
                answer.set_exception(TurnModelUnavailable("queue_full", f"{self.max_queue} requests wait already"))
            else:
                answer.set_exception(TurnModelUnavailable("closed" if self.state == "closed" else "load_failed",
                                                          f"the model is {self.state}: {self.reason}"))  # fmt: skip
            return answer
        self.stats["asked"] += 1
        self._queue.append((pcm, answer, self.clock()))
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()  # bound to this loop
            self._task = loop.create_task(self._run(), name="live-end-of-turn-model")
        assert self._wake is not None
        self._wake.set()
        return answer

    async def _run(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
            batch = [item for item in batch if not item[1].done()]  # an asker that gave up
            if not batch or self._model is None:
                continue
            self._running_since, self._running_items = self.clock(), len(batch)
            started = self._running_since
            try:
                scores, cpu_s = await asyncio.wrap_future(
                    self._thread().submit(_timed, self._model.predict, [pcm for pcm, _, _ in batch]), loop=loop
                )
            except asyncio.CancelledError:
                _fail([answer for _, answer, _ in batch], _closing())
                raise
            except Exception as exc:
                self.stats["failed"] += 1
                logger.warning("live end of turn: a model run over %d utterances failed: %s", len(batch), exc)
                failure = exc if isinstance(exc, TurnModelUnavailable) else None
                _fail([answer for _, answer, _ in batch], failure or TurnModelUnavailable("inference_failed", str(exc)))
                continue
            finally:
                self._running_since, self._running_items = None, 0
            self.stats["batches"] += 1
            ended = self.clock()
            self._runs.append((ended, cpu_s, ended - started, len(batch)))
            per_item = (ended - started) * 1000 / len(batch)
            self.item_ms += 0.3 * (per_item - self.item_ms)
            for (_, answer, _), score in zip(batch, scores):
                if not answer.done():
                    answer.set_result(score)

    def _thread(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="live-end-of-turn", initializer=self._lower_priority
            )
        return self._executor

    def _lower_priority(self) -> None:
        """On the model's thread, first thing: run `niceness` below the process (Linux only: there
        a thread has its own nice value; elsewhere this call would renice the whole server)."""
        if self.niceness <= 0 or not sys.platform.startswith("linux"):
            return
        tid = threading.get_native_id()
        try:
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + self.niceness))
            self.thread_niceness = os.getpriority(os.PRIO_PROCESS, tid)
        except OSError as exc:  # e.g. a sandbox without setpriority: the CPU share still bounds it
            logger.warning("live end of turn: could not lower the model thread's priority: %s", exc)

    # ------------------------------------------------------------ teardown

    async def aclose(self) -> None:
        """End the task and the thread; pending requests fail. Never waits for a model run."""
        self.state = "closed"
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        _fail([answer for _, answer, _ in self._queue], _closing())
        self._queue.clear()
        if self._loading is not None:
            self._loading.cancel()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        self._model = None


def _timed(predict: Callable[[list[bytes]], list[float]], batch: list[bytes]) -> tuple[list[float], float]:
    """`predict(batch)` and the CPU time this thread spent on it (runs on the model's thread)."""
    started = time.thread_time()
    scores = predict(batch)
    return scores, time.thread_time() - started


def _closing() -> TurnModelUnavailable:
    return TurnModelUnavailable("closed", "the server is closing")


def _fail(answers: list[asyncio.Future[float]], exc: TurnModelUnavailable) -> None:
    for answer in answers:
        if not answer.done():
            answer.set_exception(exc)
