"""Noise suppression of one microphone stream: RNNoise (through pyrnnoise), 16 kHz in and out.

An optional stage before server VAD for noisy rooms (the `noise_suppression` setting): the
VAD worker runs it on its thread, so the endpointer, the end-of-turn model and STT all hear
the cleaned audio.

RNNoise works on 10 ms frames at 48 kHz (480 samples), exactly three times our 16 kHz
frames (160 samples). So each 16 kHz frame is upsampled by 3 with a short linear-phase
FIR, denoised, and decimated back by 3 with the same filter: ~1 ms of filter delay each
way, where soxr's HQ stream holds back ~35 ms each way (latency the user would feel at
every end of turn).

Sample counts: every `process` call returns exactly as many samples as it was given.
The output runs `FRAME` samples (10 ms) behind the input, primed with silence, so a
partial frame never has to wait for more audio; the speech itself comes out about
`LATENCY_MS` later than it went in (that lag, RNNoise's own frame and the filters).

Without pyrnnoise (or when its library does not load) a `StreamDenoiser` passes audio
through unchanged and `reason`/`detail` say why.

State: one RNNoise state per stream (it tracks that room's noise), freed when the
denoiser is garbage collected, never by a call from another thread: a worker thread may
still be using it when its session closes.

Example:
    >>> denoiser = StreamDenoiser()            # off the event loop: the first one imports pyrnnoise (~1 s)
    >>> clean = denoiser.process(pcm16)         # len(clean) == len(pcm16), any chunk size
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any, Literal

import numpy as np

SAMPLE_RATE = 16000
RNNOISE_RATE = 48000
UP = RNNOISE_RATE // SAMPLE_RATE  # 3
FRAME = 160
"""Samples per 10 ms frame at 16 kHz (RNNoise's 480 at 48 kHz)."""
TAPS = 96
"""FIR length at 48 kHz: 32 taps per polyphase branch, group delay (TAPS - 1) / 2 = 47.5 samples (~1 ms)."""
LATENCY_MS = 32
"""How far behind the input the denoised speech comes out (measured: 511 samples): the
output's one-frame lag (10 ms), RNNoise's frame and lookahead (20 ms), the filters (~2 ms)."""
INSTALL_HINT = "pip install pyrnnoise==0.4.5"

UnavailableReason = Literal["pyrnnoise_missing", "load_failed"]


def _lowpass(taps: int = TAPS, cutoff_hz: float = 7600.0, rate: int = RNNOISE_RATE, beta: float = 6.0) -> np.ndarray:
    """Kaiser-windowed sinc low-pass at `rate`, unit DC gain: flat to 7 kHz, -6 dB at 7.6 kHz and
    more than 60 dB down from 9 kHz, where the images of speech below 7 kHz would be."""
    n = np.arange(taps) - (taps - 1) / 2
    h = np.sinc(2 * cutoff_hz / rate * n) * np.kaiser(taps, beta)
    return (h / h.sum()).astype(np.float64)


_H = _lowpass()
_UP_BRANCHES = UP * np.array([[_H[UP * (TAPS // UP - 1 - r) + p] for p in range(UP)] for r in range(TAPS // UP)])
"""Upsampling by 3 as a polyphase filter: 32 input samples (oldest first) @ this -> the next 3 output samples."""
_DOWN = np.ascontiguousarray(_H[::-1])


class _RNNoise:
    """pyrnnoise's native library, loaded once per process (importing pyrnnoise takes ~1 s)."""

    _lock = threading.Lock()
    _loaded: Any = None  # the ctypes library, once loaded
    reason: UnavailableReason | None = None
    detail = ""

    @classmethod
    def library(cls) -> Any:
        """The library, or None with `reason` and `detail` set."""
        with cls._lock:
            if cls._loaded is None and cls.reason is None:
                try:
                    from pyrnnoise import rnnoise
                except ImportError as exc:
                    cls.reason, cls.detail = "pyrnnoise_missing", f"pyrnnoise is not installed ({exc}): {INSTALL_HINT}"
                except OSError as exc:  # the package is there but its librnnoise is not loadable here
                    cls.reason, cls.detail = "load_failed", f"pyrnnoise's RNNoise library did not load: {exc}"
                else:
                    if rnnoise.FRAME_SIZE != FRAME * UP:
                        cls.reason = "load_failed"
                        cls.detail = f"RNNoise frames are {rnnoise.FRAME_SIZE} samples, expected {FRAME * UP}"
                    else:
                        cls._loaded = rnnoise.lib
            return cls._loaded


def denoise_unavailable() -> tuple[UnavailableReason, str] | None:
    """Why noise suppression cannot run here (a stable code and a sentence), or None when it can.

    The first call imports pyrnnoise: call it off the event loop."""
    return None if _RNNoise.library() is not None else (_RNNoise.reason, _RNNoise.detail)  # type: ignore[return-value]


def denoise_known_unavailable() -> tuple[UnavailableReason, str] | None:
    """Like `denoise_unavailable`, but without loading anything (safe on the event loop): a
    failed load so far, or a missing package; None when it loaded or has not been tried."""
    if _RNNoise.reason is not None:
        return _RNNoise.reason, _RNNoise.detail
    if _RNNoise._loaded is None:
        from importlib.util import find_spec

        try:
            missing = find_spec("pyrnnoise") is None
        except (ImportError, ValueError):
            missing = True
        if missing:
            return "pyrnnoise_missing", f"pyrnnoise is not installed: {INSTALL_HINT}"
    return None


def noise_suppression_status(enabled: bool) -> dict[str, str | None]:
    """For the status route, without loading anything: `noise_suppression` is `off` (the setting),
    `on`, or `unavailable` with `noise_suppression_reason` (audio then passes through)."""
    if not enabled:
        return {"noise_suppression": "off", "noise_suppression_reason": None}
    missing = denoise_known_unavailable()
    if missing is not None:
        return {"noise_suppression": "unavailable", "noise_suppression_reason": missing[0]}
    return {"noise_suppression": "on", "noise_suppression_reason": None}


class StreamDenoiser:
    """One stream's noise suppressor: PCM16 mono 16 kHz in, the same number of samples out.

    Not thread-safe: one thread at a time (the VAD worker's). Build it off the event loop.
    """

    __slots__ = ("_carry", "_down_hist", "_frame48", "_in", "_lib", "_out", "_state", "_up_hist", "__weakref__")

    def __init__(self) -> None:
        lib = _RNNoise.library()
        self._lib = lib
        self._state = lib.rnnoise_create(None) if lib is not None else None
        if lib is not None and not self._state:
            raise MemoryError("rnnoise_create returned NULL")
        self._carry = b""  # an odd trailing byte, until its sample is whole
        self._in = np.zeros(0, dtype=np.int16)  # 16 kHz samples short of a whole frame
        self._out = np.zeros(FRAME, dtype=np.int16)  # denoised samples not yet returned (primed: the lag)
        self._up_hist = np.zeros(TAPS // UP - 1, dtype=np.float64)  # last input samples, for the up filter
        self._down_hist = np.zeros(TAPS - 1, dtype=np.float64)  # last 48 kHz samples, for the down filter
        self._frame48 = np.zeros(FRAME * UP, dtype=np.float32)  # RNNoise's in-place buffer

    def __repr__(self) -> str:
        return f"StreamDenoiser({'rnnoise' if self.active else 'pass-through: ' + str(self.reason)})"

    def __del__(self) -> None:
        state, self._state = getattr(self, "_state", None), None
        if state:
            self._lib.rnnoise_destroy(state)

    @property
    def active(self) -> bool:
        """False: RNNoise is unavailable and audio passes through unchanged."""
        return self._state is not None

    @property
    def reason(self) -> UnavailableReason | None:
        return None if self.active else _RNNoise.reason

    @property
    def detail(self) -> str:
        return "" if self.active else _RNNoise.detail

    def process(self, pcm16: bytes) -> bytes:
        """Denoise a chunk of any size; returns as many whole samples as it has been given (an
        odd byte waits for its pair), `LATENCY_MS` behind."""
        if self._state is None:
            return pcm16
        data = self._carry + bytes(pcm16) if self._carry else bytes(pcm16)
        whole = len(data) & ~1
        self._carry = data[whole:]
        if not whole:
            return b""
        fresh = np.frombuffer(data, dtype="<i2", count=whole // 2)
        buffered = np.concatenate((self._in, fresh)) if self._in.size else fresh
        frames = buffered.size // FRAME
        self._in = buffered[frames * FRAME :].copy()
        if frames:
            self._out = np.concatenate((self._out, self._denoise(buffered[: frames * FRAME])))
        # The output never runs dry: it started one frame ahead and less than a frame waits in `_in`.
        out, self._out = self._out[: fresh.size], self._out[fresh.size :]
        return out.astype("<i2", copy=False).tobytes()

    def _denoise(self, pcm: np.ndarray) -> np.ndarray:
        """Whole 16 kHz frames -> as many denoised 16 kHz samples."""
        x = np.concatenate((self._up_hist, pcm.astype(np.float64)))
        self._up_hist = x[-(TAPS // UP - 1) :]
        windows = np.lib.stride_tricks.sliding_window_view(x, TAPS // UP)
        up = (windows @ _UP_BRANCHES).reshape(-1)  # 48 kHz, 3 x len(pcm)
        buf = self._frame48
        ptr = buf.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        process, state = self._lib.rnnoise_process_frame, self._state
        for start in range(0, up.size, FRAME * UP):
            buf[:] = up[start : start + FRAME * UP]
            process(state, ptr, ptr)  # in place; RNNoise's samples are int16-scaled floats
            up[start : start + FRAME * UP] = buf
        y = np.concatenate((self._down_hist, up))
        self._down_hist = y[-(TAPS - 1) :]
        down = np.lib.stride_tricks.sliding_window_view(y, TAPS)[UP - 1 :: UP] @ _DOWN
        return np.clip(np.rint(down), -32768, 32767).astype(np.int16)
