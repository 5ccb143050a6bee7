"""What the user actually heard of an interrupted answer.

The speech stage records each sentence as written, the words its voice said
(`spoken`: no tags, markup or emoji) and the audio time they start at and
last. The heard text is every sentence that finished playing plus the played
share of the voiced words of the one that was cut, trimmed to a word
boundary. Only voice counts: an answer cut before its first spoken word (an
`[joy]` tag, a silent code block) was not heard at all.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SpokenSentence:
    text: str  # as the agent wrote it (what history shows)
    spoken: str  # what the voice said; the audio's duration is the time of these words
    start_ms: int
    duration_ms: int


def heard_text(sentences: list[SpokenSentence], played_ms: int) -> str:
    parts: list[str] = []
    voiced = False
    for sentence in sentences:
        if played_ms <= sentence.start_ms:
            break
        end = sentence.start_ms + sentence.duration_ms
        if played_ms >= end or sentence.duration_ms <= 0:
            parts.append(sentence.text)
            voiced = voiced or (sentence.duration_ms > 0 and bool(sentence.spoken))
            continue
        share = (played_ms - sentence.start_ms) / sentence.duration_ms
        cut = _prefix(sentence.spoken, share)
        parts.append(cut)
        voiced = voiced or bool(cut)
        break
    return _join(p for p in parts if p) if voiced else ""


def _prefix(text: str, share: float) -> str:
    cut = int(len(text) * share)
    if cut <= 0:
        return ""
    if any("\u3000" <= ch <= "\u9fff" for ch in text[:cut]):
        return text[:cut]  # CJK: every character is a word
    space = text.rfind(" ", 0, cut + 1)
    return text[:space].rstrip(" ,;:") if space > 0 else ""


def _join(parts) -> str:
    out = ""
    for part in parts:
        if out and not (out[-1] > "\u2fff" or part[0] > "\u2fff"):
            out += " "
        out += part
    return out
