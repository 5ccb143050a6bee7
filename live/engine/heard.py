"""What the user actually heard of an interrupted answer.

The speech stage records each sentence with the audio time it starts at and
lasts; the heard text is every sentence that finished playing plus the
played share of the one that was cut, trimmed to a word boundary.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SpokenSentence:
    text: str
    start_ms: int
    duration_ms: int


def heard_text(sentences: list[SpokenSentence], played_ms: int) -> str:
    parts: list[str] = []
    for sentence in sentences:
        if played_ms <= sentence.start_ms:
            break
        end = sentence.start_ms + sentence.duration_ms
        if played_ms >= end or sentence.duration_ms <= 0:
            parts.append(sentence.text)
            continue
        share = (played_ms - sentence.start_ms) / sentence.duration_ms
        parts.append(_prefix(sentence.text, share))
        break
    return _join(p for p in parts if p)


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
