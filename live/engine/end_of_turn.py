"""When is the user done talking? The end-of-turn decision, and backchannel detection.

A fixed silence (500 ms) cuts people off mid-thought and still answers late. Instead,
after a short pause (`ask_after_ms`, ~200 ms, close to the human turn gap) the
end-of-turn model (`live.audio.turn_model`) is asked whether the speech sounds
finished. Done: the turn ends at once. Not done: keep listening until the user speaks
again (a new pause asks again) or the long limit (`max_silence_ms`) passes.

A "done" below `confirm_threshold` is not sure enough to end the turn at once: thinking
pauses after fillers ("The problem is that") score 0.7-0.95 too. The turn then ends at
`unsure_silence_ms` (1 s) unless the user speaks first, and a caller that answers ahead
(the speculation) lets its held answer reach the agent meanwhile (`Step.SPECULATE`), so
the wait rarely delays the answer. A score at or above the bar ends the turn at once.

With answering ahead, the pause's transcript is a second cue (`text_cue`): words that
end like a finished sentence ("...today?") move the decision one step sooner (an unsure
"done" ends at once; a "not done" ends at the unsure silence), words that cannot end one
("I need to, um,", "...and the") one step later (a sure "done" waits for the unsure
silence; an unsure one for the long limit). The transcription runs beside the model, so
while it is expected the policy waits for it (never past the fallback silence).

When the model cannot answer in time, the old rule holds: the turn ends after
`fallback_silence_ms`. That happens when the model is unavailable (not installed,
file mismatch, failed), overloaded (its queue lag is past `max_model_lag_ms`, so the
answer would come too late to help), or late (no answer by the fallback silence).
So the semantic rule is never slower than the fixed one.

Pure: no I/O, no asyncio. Silence is VAD stream time (ms of audio since the last
voiced frame), passed in by the caller; the clock only times the model's answers for
the metrics. Every ended turn leaves an `EndOfTurnDecision` for the metrics timeline.

Example (the caller's side):
    >>> policy = EndOfTurnPolicy(EndOfTurnSettings())
    >>> step = policy.on_silence(220, ModelStatus.ready(lag_ms=12))
    >>> if step is Step.ASK:                       # submit the utterance to the model
    ...     step = policy.on_score(policy.pause_id, 0.93, silence_ms=340)
    >>> if step is Step.END:
    ...     metrics.add(policy.decision)

`is_backchannel(text)` says whether a transcript is only a listener's acknowledgement
("mm-hmm", "yeah", "okay", "嗯", "对", "好的"): while the character speaks, that should
not interrupt it.
"""

from __future__ import annotations

import enum
import re
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

FallbackReason = Literal["model_unavailable", "model_overloaded", "model_late", "model_failed"]
EndReason = Literal["model_done", "text_done", "max_silence", "fallback_silence"]
ConfirmedBy = Literal["score", "text", "silence"]


class TextCue(enum.Enum):
    """What the words of a pause say about the end of the turn (`text_cue`)."""

    FINISHED = "finished"
    """They end like a finished sentence: a full stop, question or exclamation mark."""
    UNFINISHED = "unfinished"
    """They cannot end one: a trailing comma or ellipsis, a filler, a conjunction or an article."""
    UNKNOWN = "unknown"
    """Nothing either way (no punctuation, no words, no transcript)."""


@dataclass(frozen=True, slots=True)
class EndOfTurnSettings:
    """Times are ms of silence after the last voiced frame; the threshold a model probability."""

    ask_after_ms: int = 200
    """Pause before the model is asked (150-250 ms: human turn gaps are ~200 ms)."""
    max_silence_ms: int = 2500
    """The turn ends after this much silence whatever the model said."""
    fallback_silence_ms: int = 500
    """The fixed rule, used when the model cannot answer in time."""
    done_threshold: float = 0.5
    """A score at or above it means "the user is done"."""
    max_model_lag_ms: float = 250.0
    """Past this queue lag the model is overloaded: its answer would arrive after the fallback silence."""
    speculate: bool = False
    """The caller answers pauses ahead (`end_of_turn_speculation`): a held answer reaches its agent on a
    "done" (`Step.SPECULATE`) while the unsure silence runs."""
    confirm_threshold: float = 0.96
    """A score at or above it ends the turn at once. Measured on Piper speech with -50 dBFS noise:
    12 of 16 complete questions score above it, none of 12 unfinished phrases (6 of them score 0.7-0.95)."""
    unsure_silence_ms: int = 1000
    """A "done" below `confirm_threshold` ends the turn after this much silence: longer than a thinking pause."""
    min_speech_ms: int = 0
    """A pause after less voiced audio than this (a click, a lone "Wait,") is not judged: ended, it would be
    dropped as too short, so only the fallback silence ends it (the caller passes `speech_ms` to `on_silence`)."""

    def __post_init__(self) -> None:
        if not 0 < self.ask_after_ms < self.fallback_silence_ms <= self.max_silence_ms:
            raise ValueError(
                "end-of-turn times must satisfy 0 < ask_after_ms < fallback_silence_ms <= max_silence_ms, got "
                f"{self.ask_after_ms}, {self.fallback_silence_ms}, {self.max_silence_ms}"
            )
        if not 0.0 < self.done_threshold < 1.0:
            raise ValueError(f"done_threshold must be between 0 and 1, got {self.done_threshold}")
        if not self.ask_after_ms < self.unsure_silence_ms <= self.max_silence_ms:
            raise ValueError(
                f"unsure_silence_ms must be above ask_after_ms and at most max_silence_ms, got {self.unsure_silence_ms}"
            )
        if not self.done_threshold <= self.confirm_threshold <= 1.0:
            raise ValueError(f"confirm_threshold must be between done_threshold and 1, got {self.confirm_threshold}")
        if self.max_model_lag_ms < 0:
            raise ValueError(f"max_model_lag_ms must not be negative, got {self.max_model_lag_ms}")


@dataclass(frozen=True, slots=True)
class ModelStatus:
    """Whether the end-of-turn model can take a request now, as the caller sees it."""

    available: bool
    lag_ms: float = 0.0
    """How long a request now waits before it runs (the worker's queue lag)."""
    reason: str | None = None
    """Why it is unavailable (e.g. `TurnModelUnavailable.reason`), for the metrics."""

    @classmethod
    def ready(cls, lag_ms: float = 0.0) -> ModelStatus:
        return cls(True, lag_ms)

    @classmethod
    def unavailable(cls, reason: str) -> ModelStatus:
        return cls(False, 0.0, reason)


class Step(enum.Enum):
    """What the caller does next."""

    LISTEN = "listen"
    """Keep listening (also while a model answer is pending)."""
    ASK = "ask"
    """Submit the utterance so far to the model, then call `on_score(pause_id, ...)`."""
    END = "end"
    """The turn is over: `decision` says why."""
    SPECULATE = "speculate"
    """Probably done, and answered ahead: the held answer may reach the agent; the turn is not over yet."""


@dataclass(frozen=True, slots=True)
class EndOfTurnDecision:
    """Why a turn ended, for the metrics timeline."""

    reason: EndReason
    silence_ms: int
    """Silence waited after the last voiced frame before the turn ended."""
    score: float | None
    """The model's last score in this utterance (None if it never answered)."""
    model_ms: float | None
    """Time from asking the model to its answer (None if it never answered)."""
    fallback: FallbackReason | None = None
    fallback_detail: str | None = None
    scores: tuple[float, ...] = field(default=())
    """Every score of this utterance, one per pause the model judged."""
    confirmed_by: ConfirmedBy | None = None
    """For `model_done` / `text_done`: the score alone ended the turn, the transcript's words did, or a
    later silence confirmed an unsure verdict."""
    text: TextCue | None = None
    """The last judged pause's transcript cue (None: no transcript came in time)."""

    def as_metrics(self) -> dict[str, object]:
        """Flat JSON-ready fields for a metrics frame."""
        return {
            "eot_reason": self.reason,
            "eot_silence_ms": self.silence_ms,
            "eot_score": None if self.score is None else round(self.score, 3),
            "eot_model_ms": None if self.model_ms is None else round(self.model_ms, 1),
            "eot_fallback": self.fallback,
            "eot_fallback_detail": self.fallback_detail,
            "eot_pauses_judged": len(self.scores),
            "eot_confirmed_by": self.confirmed_by,
            "eot_text": None if self.text is None else self.text.value,
        }


class EndOfTurnPolicy:
    """The end-of-turn decision of one session's current utterance.

    Drive it with VAD facts: `on_speech()` when the user is (again) voicing,
    `on_silence(ms, status)` as a pause grows, `on_score(pause_id, score, ms)` and
    `on_model_failed(pause_id, reason, ms)` when the model answers; with answering ahead,
    `expect_text()` when the pause is being transcribed and `on_text(pause_id, text, ms)`
    when it is. After `Step.END`, `decision` holds the record and `reset()` starts the
    next utterance.
    """

    def __init__(self, settings: EndOfTurnSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self.pause_id = 0
        """Which pause an answer belongs to: an answer to an older pause is stale."""
        self.decision: EndOfTurnDecision | None = None
        self._scores: list[float] = []
        self._model_ms: float | None = None
        self._answer_waiting = False
        self._reset_pause()

    def __repr__(self) -> str:
        state = "ended" if self.decision else ("asked" if self._asked_at is not None else "listening")
        return f"EndOfTurnPolicy({state}, pause={self.pause_id}, scores={self._scores})"

    def reset(self) -> None:
        """Start a new utterance."""
        self.pause_id += 1
        self.decision = None
        self._scores = []
        self._model_ms = None
        self._answer_waiting = False
        self._reset_pause()

    def _reset_pause(self) -> None:
        self._asked_at: float | None = None  # clock time of the pending request
        self._verdict: bool | None = None  # this pause's answer: done or not (its score is `_scores[-1]`)
        self._fallback: FallbackReason | None = None
        self._fallback_detail: str | None = None
        self._text_expected = False  # this pause is being transcribed ...
        self._text: TextCue | None = None  # ... and what its words said
        self._went_ahead = False  # `Step.SPECULATE` was returned in this pause

    def answer_waiting(self) -> None:
        """The character's answer is paused for this utterance (`pause_play`): the long limit is the
        fallback silence, so an "uh-huh" the model finds unfinished does not hold the answer for seconds."""
        self._answer_waiting = True

    def on_speech(self) -> None:
        """The user is voicing: any pause is over and its pending answer is stale."""
        if self.decision is not None:
            return
        self.pause_id += 1
        self._reset_pause()

    def on_silence(self, silence_ms: int, status: ModelStatus, speech_ms: int | None = None) -> Step:
        """The current pause has lasted `silence_ms`; `status` is the model's state now; `speech_ms` the
        utterance's voiced audio so far, when the caller knows it."""
        if self.decision is not None:
            return Step.END
        s = self.settings
        if speech_ms is not None and speech_ms < s.min_speech_ms and self._asked_at is None and self._verdict is None:
            status = ModelStatus.unavailable("too_short")
        if silence_ms >= (s.fallback_silence_ms if self._answer_waiting else s.max_silence_ms):
            return self._end("max_silence", silence_ms)
        if self._verdict is not None:
            return self._judge(silence_ms)
        if self._fallback is not None or self._asked_at is not None:
            if silence_ms < s.fallback_silence_ms:
                return Step.LISTEN  # waiting for the answer
            if self._fallback is None:
                self._fallback, self._fallback_detail = "model_late", f"no answer after {silence_ms} ms of silence"
            return self._end("fallback_silence", silence_ms)
        if silence_ms < s.ask_after_ms:
            return Step.LISTEN
        if not status.available:
            self._fallback, self._fallback_detail = "model_unavailable", status.reason
        elif status.lag_ms > s.max_model_lag_ms:
            self._fallback = "model_overloaded"
            self._fallback_detail = f"queue lag {status.lag_ms:.0f} ms > {s.max_model_lag_ms:.0f} ms"
        else:
            self._asked_at = self._clock()
            return Step.ASK
        return self.on_silence(silence_ms, status)  # the fallback may already be due

    def on_score(self, pause_id: int, score: float, silence_ms: int) -> Step:
        """The model answered for `pause_id`; the pause has now lasted `silence_ms`."""
        if self.decision is not None:
            return Step.END
        if pause_id != self.pause_id or self._asked_at is None or self._verdict is not None:
            return Step.LISTEN  # stale: the user spoke since, or a duplicate answer
        self._model_ms = (self._clock() - self._asked_at) * 1000
        self._scores.append(score)
        self._verdict = score >= self.settings.done_threshold
        return self._judge(silence_ms)

    def expect_text(self) -> None:
        """The current pause is being transcribed: its words will count (`on_text`)."""
        if self.decision is None:
            self._text_expected = True

    def on_text(self, pause_id: int, text: str | None, silence_ms: int) -> Step:
        """The transcript of `pause_id` came in (None: the transcription failed); the pause has
        now lasted `silence_ms`."""
        if self.decision is not None:
            return Step.END
        if pause_id != self.pause_id or self._text is not None:
            return Step.LISTEN
        self._text = text_cue(text) if text is not None else TextCue.UNKNOWN
        if self._verdict is None:
            return Step.LISTEN  # the model has not answered yet: it still decides first
        return self._judge(silence_ms)

    def _judge(self, silence_ms: int) -> Step:
        """This pause has a verdict: end now, at a silence still to come, or go on listening.

        The verdict places the end on a ladder (now / the unsure silence / the long limit), and
        the words move it one rung (finished: sooner; unfinished: later). While the transcript
        is still coming the decision waits for it, up to the fallback silence.
        """
        s = self.settings
        if self._text_expected and self._text is None and silence_ms < s.fallback_silence_ms:
            return Step.LISTEN
        sure = self._scores[-1] >= s.confirm_threshold  # this pause's score: `on_score` appended it
        rung = 0 if sure else (1 if self._verdict else 2)
        if self._text is TextCue.FINISHED:
            rung -= 1
        elif self._text is TextCue.UNFINISHED:
            rung += 1
        rung = min(max(rung, 0), 2)
        reason: EndReason = "model_done" if self._verdict else "text_done"
        if rung == 0:
            return self._end(reason, silence_ms, "score" if sure else "text")
        long_limit = s.fallback_silence_ms if self._answer_waiting else s.max_silence_ms
        if rung == 2 or silence_ms < min(s.unsure_silence_ms, long_limit):
            if silence_ms >= long_limit:
                return self._end("max_silence", silence_ms)
            if rung == 1 and not self._went_ahead:  # probably done: said once per pause
                self._went_ahead = True
                return Step.SPECULATE
            return Step.LISTEN
        return self._end(reason, silence_ms, "silence")

    def on_model_failed(self, pause_id: int, reason: str, silence_ms: int) -> Step:
        """The model's run for `pause_id` failed: fall back to the fixed silence for this pause."""
        if self.decision is not None:
            return Step.END
        if pause_id != self.pause_id or self._asked_at is None or self._verdict is not None:
            return Step.LISTEN
        self._asked_at = None
        self._fallback, self._fallback_detail = "model_failed", reason
        return self.on_silence(silence_ms, ModelStatus.unavailable(reason))

    def _end(self, reason: EndReason, silence_ms: int, confirmed_by: ConfirmedBy | None = None) -> Step:
        self.decision = EndOfTurnDecision(
            reason=reason,
            silence_ms=silence_ms,
            score=self._scores[-1] if self._scores else None,
            model_ms=self._model_ms,
            fallback=self._fallback,
            fallback_detail=self._fallback_detail,
            scores=tuple(self._scores),
            confirmed_by=confirmed_by,
            text=self._text,
        )
        return Step.END


# --- backchannels ---------------------------------------------------------------------

MAX_BACKCHANNEL_WORDS = 4
MAX_BACKCHANNEL_HAN = 6

# Whole phrases a listener says to keep the speaker going. Elongations ("mmmm", "yeahhh",
# "okaaay") match too. "no", "wait" and "stop" are deliberately absent: they mean something.
_LATIN_PHRASES = (
    r"m+", r"h+m+", r"m+h+m+", r"m+ h+m+", r"u+h+ h+u+h+", r"u+h+ u+h+",
    r"a+h+", r"o+h+", r"u+h+", r"u+m+", r"e+r+m*",
    r"ye+a+h*", r"yep", r"yup", r"yes", r"ya", r"o+k+(?:a+y+)?", r"okey", r"kay",
    r"right", r"al+ ?right", r"sure", r"cool", r"nice", r"great", r"true", r"exactly", r"indeed",
    r"wow", r"i see", r"got it", r"i know", r"of course", r"that's right", r"makes sense", r"sounds good",
    r"go on", r"uh huh",
)  # fmt: skip
_LATIN_BACKCHANNEL = re.compile(rf"(?:{'|'.join(_LATIN_PHRASES)})(?: (?:{'|'.join(_LATIN_PHRASES)}))*")
_HAN_BACKCHANNEL = re.compile(
    r"(?:嗯哼|嗯|恩|唔|哦|噢|喔|啊|呀|呃|哈|好的?|对的?|是的?|行|没错|明白了?|知道了|懂了|了解|确实|这样啊?)+"
)
_TOKEN = re.compile(r"[a-z']+|[\u3400-\u9fff]+|[^\s]")


def _normalise(text: str) -> str:
    """Lower case, compatibility forms folded, punctuation and symbols turned into spaces."""
    text = unicodedata.normalize("NFKC", text).casefold().replace("\u2019", "'")
    return "".join(" " if unicodedata.category(ch)[0] in "PSZC" and ch != "'" else ch for ch in text)


def is_backchannel(text: str) -> bool:
    """True if `text` is only a short listener acknowledgement, in English or Chinese.

    Punctuation, case and spacing do not matter ("Mm-hmm.", "mm hmm", "OK!", "嗯嗯，对"); a
    transcript with anything else in it ("yeah, but wait", "好，停一下") is not one.
    """
    latin: list[str] = []
    han: list[str] = []
    for token in _TOKEN.findall(_normalise(text)):
        if token[0] == "'" or token[0].isascii() and token[0].isalpha():
            latin.append(token.strip("'"))
        elif "\u3400" <= token[0] <= "\u9fff":
            han.append(token)
        else:
            return False  # digits, other scripts: something was said
    if not latin and not han:
        return False
    if len(latin) > MAX_BACKCHANNEL_WORDS or sum(map(len, han)) > MAX_BACKCHANNEL_HAN:
        return False
    if latin and not _LATIN_BACKCHANNEL.fullmatch(" ".join(latin)):
        return False
    return all(_HAN_BACKCHANNEL.fullmatch(run) for run in han)


# --- the words of a pause ------------------------------------------------------------------

# Words a sentence does not end on: fillers, conjunctions, articles and possessives, "to".
# Prepositions and pronouns are absent on purpose: "Who are you going with?", "I told her."
_CONTINUING_WORDS = frozenset(
    "um umm uhm uh uhh er erm and or but because cause if than the a an my your our their to".split()
)
# Chinese has no spaces: only endings that cannot close a sentence ("我要那个" can; "暖和" ends in 和).
_CONTINUING_HAN = ("嗯", "呃", "额", "就是说", "然后", "所以", "因为", "但是", "而且", "或者", "如果")
_CONTINUING_MARKS = (",", "，", "、", "…", "...", "—", "-", ":", "：", ";", "；")
_FINAL_MARKS = (".", "?", "!", "。", "？", "！")
_TRAILING = "\"'”’)）」』]】 \t\n"


def text_cue(text: str) -> TextCue:
    """What a transcript's ending says about the turn, in English and Chinese.

    >>> text_cue("What is the weather like today?"), text_cue("I need to, um,"), text_cue("so I was")
    (<TextCue.FINISHED: 'finished'>, <TextCue.UNFINISHED: 'unfinished'>, <TextCue.UNKNOWN: 'unknown'>)

    A filler or conjunction at the end wins over the punctuation after it ("I need to um."):
    recognisers often close a fragment with a full stop.
    """
    text = unicodedata.normalize("NFKC", text).rstrip(_TRAILING)
    if not text:
        return TextCue.UNKNOWN
    words = re.findall(r"[A-Za-z']+|[\u3400-\u9fff]+", text)
    if words:
        last = words[-1]
        if last.casefold() in _CONTINUING_WORDS or last.endswith(_CONTINUING_HAN):
            return TextCue.UNFINISHED
    if text.endswith(_CONTINUING_MARKS):
        return TextCue.UNFINISHED
    if text.endswith(_FINAL_MARKS):
        return TextCue.FINISHED
    return TextCue.UNKNOWN
