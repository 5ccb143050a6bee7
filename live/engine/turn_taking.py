"""Semantic end of turn for one server-VAD session: the VAD's pauses, the policy, the model.

The endpointer reports a pause as it reaches `ask_after_ms` and again at the fallback
silence (`SpeechPaused`), and a return to speech (`SpeechResumed`); its own silence
limit is the long limit. At a pause the `EndOfTurnPolicy` says what to do: ask the model
(the shared `TurnModelWorker`, off the loop), end the utterance now (the model said done,
or the fallback silence passed while the model could not answer), or keep listening.
Ending goes through `end_utterance(pause_id)`, so the endpointer itself emits the
`SpeechEnded` (and refuses when the user spoke again meanwhile): one path for every end.

Nothing here waits: model answers arrive as future callbacks on the loop; an answer for
an older pause is stale and ignored (the policy's pause ids).

With a `Speculator` (`end_of_turn_speculation`), the session answers ahead: at the first
short pause it transcribes the utterance so far (`speculate`), and the words come back
for the policy to weigh beside the model's score (`EndOfTurnPolicy.on_text`); when the
end is decided or probably near the held answer may start its agent (`go_ahead`), and
when the user speaks again it is dropped (`drop_speculation`); the `SpeechEnded` commits it.

Example (the session's side):
    >>> taking = TurnTaking(settings, worker, stream.end_utterance)
    >>> taking.on_paused(event)            # SpeechPaused
    >>> taking.on_resumed()                # SpeechResumed / SpeechStarted
    >>> decision = taking.on_ended(ended)  # SpeechEnded: why it ended, for the metrics
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

from ..audio.turn_model import TurnModelUnavailable
from ..audio.vad import SpeechEnded, SpeechPaused
from ..config import LiveSettings
from .end_of_turn import EndOfTurnPolicy, EndOfTurnSettings, ModelStatus, Step
from .turn_model_worker import TurnModelWorker


def end_of_turn_settings(settings: LiveSettings) -> EndOfTurnSettings:
    """The policy's times from the plugin settings (already clamped into order there)."""
    return EndOfTurnSettings(
        ask_after_ms=settings.end_of_turn_pause_ms,
        fallback_silence_ms=settings.vad_silence_ms,
        max_silence_ms=settings.end_of_turn_max_silence_ms,
        unsure_silence_ms=settings.end_of_turn_unsure_ms,
        speculate=settings.end_of_turn_speculation,
        min_speech_ms=settings.vad_min_speech_ms,
    )


class Speculator(Protocol):
    """The session's side of answering ahead of the end of turn."""

    def speculate(self, paused: SpeechPaused, heard: Callable[[str | None], None]) -> bool:
        """A short pause: start answering the utterance so far (transcribe it, then call `heard` with
        the words, or None when the transcription failed), every output held. Returns False when it
        does not (e.g. while an answer still plays: then `go_ahead` and `drop_speculation` find nothing)."""
        ...

    def go_ahead(self) -> None:
        """The end is decided, or probably near: the held answer may start its agent."""
        ...

    def drop_speculation(self) -> None:
        """The user went on: cancel the held answer; nothing of it may remain."""
        ...


class TurnTaking:
    """The end-of-turn decision of one session's server-VAD utterances."""

    def __init__(
        self,
        settings: EndOfTurnSettings,
        model: TurnModelWorker | None,
        end_utterance: Callable[[int], None],
        *,
        unavailable_reason: str = "model_off",
        clock: Callable[[], float] = time.monotonic,
        speculator: Speculator | None = None,
    ) -> None:
        self.settings = settings
        self._speculator = speculator if settings.speculate else None
        self._speculating = False  # a held answer of this pause exists
        self._model = model
        self._end_utterance = end_utterance
        self._unavailable = unavailable_reason
        self._clock = clock
        self.policy = EndOfTurnPolicy(settings, clock)
        self._vad_pause_id: int | None = None  # the endpointer's id of the current pause
        self._pause_silence_ms = 0  # the silence at the last pause report ...
        self._pause_seen_at = 0.0  # ... and when it arrived (clock)
        self._asked: set[asyncio.Future] = set()
        if model is not None:
            model.warm()

    def status(self) -> ModelStatus:
        return self._model.status() if self._model is not None else ModelStatus.unavailable(self._unavailable)

    def on_paused(self, event: SpeechPaused, *, answer_waiting: bool = False) -> None:
        """`answer_waiting`: the character's answer is paused until this utterance is judged."""
        if answer_waiting:
            self.policy.answer_waiting()
        self._vad_pause_id = event.pause_id
        self._pause_silence_ms, self._pause_seen_at = event.silence_ms, self._clock()
        if (
            self._speculator is not None
            and not self._speculating
            and self.policy.decision is None
            and event.speech_ms >= self.settings.min_speech_ms  # else dropped as a noise if it ended here
        ):
            self._speculating = True
            pause_id = self.policy.pause_id
            # before the model: the transcription runs beside it
            if self._speculator.speculate(event, lambda text: self._heard(pause_id, text)):
                self.policy.expect_text()
        step = self.policy.on_silence(event.silence_ms, self.status(), event.speech_ms)
        if step is Step.ASK:
            self._ask(event.pcm)
        else:
            self._act(step)

    def on_resumed(self) -> None:
        self._vad_pause_id = None
        self._cancel_asks()  # their answers would be stale
        if self._speculating:
            self._speculating = False
            assert self._speculator is not None
            self._speculator.drop_speculation()
        if self.policy.decision is not None:
            # The end was decided, but the user spoke again before the endpointer acted on it
            # (it refuses a stale pause): the same utterance goes on, judged afresh.
            self.policy.reset()
        else:
            self.policy.on_speech()

    def on_ended(self, event: SpeechEnded) -> dict[str, object]:
        """The utterance ended (as asked, or at the endpointer's own limits): the metrics fields."""
        if event.forced:
            fields: dict[str, object] = {"eot_reason": "forced", "eot_silence_ms": event.silence_ms}
        else:
            if self.policy.decision is None:  # the endpointer's own silence limit: the long limit
                self.policy.on_silence(max(event.silence_ms, self.settings.max_silence_ms), self.status())
            assert self.policy.decision is not None
            fields = self.policy.decision.as_metrics()
            fields["eot_silence_ms"] = event.silence_ms  # what the endpointer actually waited
        self.reset()
        return fields

    def reset(self) -> None:
        """The utterance is over (ended or discarded): the next one starts fresh."""
        self._vad_pause_id = None
        self._speculating = False  # ended: the session commits the held answer; discarded: drops it
        self.policy.reset()
        self._cancel_asks()

    def close(self) -> None:
        self._cancel_asks()

    def _cancel_asks(self) -> None:
        for answer in self._asked:
            answer.cancel()  # the worker skips a request nobody waits for: no CPU for a stale answer
        self._asked.clear()

    # ------------------------------------------------------------ the model

    def _ask(self, pcm: bytes) -> None:
        assert self._model is not None
        pause_id = self.policy.pause_id
        answer = self._model.ask(pcm)
        self._asked.add(answer)
        answer.add_done_callback(lambda done: self._answered(pause_id, done))

    def _answered(self, pause_id: int, answer: asyncio.Future) -> None:
        self._asked.discard(answer)
        if answer.cancelled():
            return
        silence = self._silence_now()
        exc = answer.exception()
        if exc is None:
            step = self.policy.on_score(pause_id, answer.result(), silence)
        else:
            reason = exc.reason if isinstance(exc, TurnModelUnavailable) else "inference_failed"
            step = self.policy.on_model_failed(pause_id, reason, silence)
        if pause_id == self.policy.pause_id:
            self._act(step)

    def _heard(self, pause_id: int, text: str | None) -> None:
        """The speculation's transcript of pause `pause_id` is in: the words weigh in."""
        if pause_id == self.policy.pause_id and self._vad_pause_id is not None:
            self._act(self.policy.on_text(pause_id, text, self._silence_now()))

    def _act(self, step: Step) -> None:
        if step is Step.SPECULATE and self._speculating:
            assert self._speculator is not None
            self._speculator.go_ahead()
        elif step is Step.END:
            self._end()

    def _silence_now(self) -> int:
        return self._pause_silence_ms + round((self._clock() - self._pause_seen_at) * 1000)

    def _end(self) -> None:
        if self._vad_pause_id is not None:
            if self._speculating:  # the endpointer's `SpeechEnded` is a cycle away: start the agent now
                assert self._speculator is not None
                self._speculator.go_ahead()
            self._end_utterance(self._vad_pause_id)
