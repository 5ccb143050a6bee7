"""The end-of-turn model: has the user finished their turn, judging by how they spoke?

smart-turn v3.2 (CPU, int8 ONNX; BSD-2-Clause, see live/models/smart_turn/) reads the
last 8 s of an utterance as Whisper log-mel features (`live.audio.log_mel`) and
returns the probability that the speaker is done. It hears intonation and unfinished
phrases ("I need to, um," scores low; "What time is it?" high), so a short pause can
end a turn when the speech sounds finished and a long one need not when it does not.

Synchronous on purpose: it runs off the event loop on a thread of its own
(`live.engine.turn_model_worker`; not the shared VAD thread, whose every session would
stall ~110 ms per call), on the utterances of the sessions that paused meanwhile, as one
batched `predict` call. The model's batch dimension is dynamic, so a batch is one ONNX
run (split into runs of at most `max_batch` inputs to bound memory). Each input costs
~110 ms of one core whatever the batch size, so the caller bounds how many it queues.

Anything that stops the model from running (no onnxruntime, the file missing or not
the one we shipped, a load or inference failure) raises `TurnModelUnavailable`, whose
`reason` the caller reports when it falls back to the fixed silence rule.

Example:
    >>> model = EndOfTurnModel()               # once per server; verifies the file's sha256
    >>> model.predict([pcm_a, pcm_b])          # PCM16 16 kHz mono bytes per utterance
    [0.97, 0.04]
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from .log_mel import N_FRAMES, N_MELS, whisper_log_mel

MODEL_DIR = Path(__file__).resolve().parents[1] / "models" / "smart_turn"
MODEL_PATH = MODEL_DIR / "smart-turn-v3.2-cpu.onnx"
MODEL_SHA256 = "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f"
"""The file shipped in live/models/smart_turn (PROVENANCE.json says where it came from)."""
MAX_BATCH = 16
"""Inputs per ONNX run, to bound its memory. Batching saves no CPU per input (~110 ms each on
one core, see live/models/smart_turn/README.md): the caller bounds how many it submits at once."""

UnavailableReason = Literal[
    "onnxruntime_missing", "model_missing", "model_mismatch", "load_failed", "inference_failed",
    "queue_full", "closed",  # from the server's worker (live.engine.turn_model_worker)
]  # fmt: skip


class TurnModelUnavailable(RuntimeError):
    """The end-of-turn model cannot answer; the caller falls back to the silence rule.

    `reason` is a stable code for status and metrics.
    """

    def __init__(self, reason: UnavailableReason, detail: str) -> None:
        super().__init__(f"end-of-turn model unavailable ({reason}): {detail}")
        self.reason: UnavailableReason = reason


class EndOfTurnModel:
    """One onnxruntime session of smart-turn, scoring many utterances per run.

    Build it off the event loop (reading and hashing 8.7 MB, then loading, takes
    ~100 ms). `predict` may be called from one thread at a time (a lock enforces it).
    """

    def __init__(
        self,
        model_path: Path | str = MODEL_PATH,
        *,
        expected_sha256: str | None = MODEL_SHA256,
        threads: int = 1,
        max_batch: int = MAX_BATCH,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise TurnModelUnavailable("onnxruntime_missing", "pip install onnxruntime") from exc
        path = Path(model_path)
        if not path.is_file():
            raise TurnModelUnavailable("model_missing", f"{path} does not exist")
        if expected_sha256 is not None:
            with open(path, "rb") as f:
                actual = hashlib.file_digest(f, "sha256").hexdigest()
            if actual != expected_sha256:
                raise TurnModelUnavailable(
                    "model_mismatch", f"{path} has sha256 {actual}, expected {expected_sha256}"
                )
        options = ort.SessionOptions()
        # One core: the other runs the server's event loop.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for a bad file
            raise TurnModelUnavailable("load_failed", f"{path}: {exc}") from exc
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or list(inputs[0].shape[1:]) != [N_MELS, N_FRAMES]:
            raise TurnModelUnavailable(
                "load_failed", f"{path} expects {[(i.name, i.shape) for i in inputs]}, not one [batch, 80, 800] input"
            )
        self._input_name = inputs[0].name
        self.path = path
        self.max_batch = max_batch
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"EndOfTurnModel({self.path.name}, max_batch={self.max_batch})"

    def predict(self, batch: Sequence[bytes]) -> list[float]:
        """Probability in [0, 1] that each utterance's speaker is done, in input order.

        Each item is PCM16 16 kHz mono bytes of the utterance so far; only its last 8 s
        count. Raises `TurnModelUnavailable("inference_failed")` if onnxruntime fails.
        """
        if not batch:
            return []
        scores: list[float] = []
        with self._lock:
            for start in range(0, len(batch), self.max_batch):
                part = batch[start : start + self.max_batch]
                features = np.stack([whisper_log_mel(pcm) for pcm in part])
                try:
                    out = self._session.run(None, {self._input_name: features})[0]
                except Exception as exc:
                    raise TurnModelUnavailable("inference_failed", str(exc)) from exc
                scores.extend(float(p) for p in np.asarray(out, dtype=np.float64).reshape(len(part)))
        return scores
