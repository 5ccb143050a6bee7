"""Was the user's speech over the answer meant as an interruption?

With pause-on-speech (a client connected with `pause_play=1`), speech over the
character's answer first pauses its playback. The utterance then cuts the answer
only when it is meant: long (`barge_in_meant_ms` of voiced speech, decided while
the user still speaks), or, once it ended, with at least `barge_in_min_words`
words that are not only a listener's acknowledgement ("mm-hmm", "yeah", "嗯",
`is_backchannel`). Anything else (a backchannel, a cough, no words) lets the
answer play on.

Words: each Latin-script word counts one, each CJK character one (Chinese has no
spaces; "停下" is two). Non-speech annotations that speech-to-text writes for
sounds ("[cough]", "(coughing)", "*sighs*", "♪") are not words.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from typing import Literal

from .end_of_turn import is_backchannel

Verdict = Literal["meant", "backchannel", "empty_transcript"]

_ANNOTATION = re.compile(r"\[[^\]]*\]|\([^)]*\)|（[^）]*）|\*[^*]*\*|♪+")
_CJK = "\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af"  # kana, Han, Hangul: one character, one word
_WORD = re.compile(rf"[^\W\d_{_CJK}]+(?:'[^\W\d_]+)*|\d+|[{_CJK}]")


def spoken_words(text: str) -> list[str]:
    """The words of a transcript, sound annotations left out; a CJK character is one word."""
    return _WORD.findall(_ANNOTATION.sub(" ", text))


def verdict(text: str, min_words: int) -> Verdict:
    """`meant` when the transcript interrupts the answer; else why not."""
    words = spoken_words(text)
    if not words:
        return "empty_transcript"
    if len(words) < min_words or is_backchannel(text):
        return "backchannel"
    return "meant"
