"""Text-level echo guard: drop transcripts that are the bot's own voice.

Without headphones the microphone can pick up the bot's speech; browser echo
cancellation misses audio played through Web Audio. If a transcript is
mostly words the bot said in the last few seconds, it is an echo.
"""

from __future__ import annotations

import re
import time
from collections import deque

_WORD = re.compile(r"[a-z0-9']+|[\u3400-\u9fff]")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class EchoGuard:
    def __init__(self, window_s: float = 8.0, overlap: float = 0.8, clock=time.monotonic) -> None:
        self._window = window_s
        self._overlap = overlap
        self._clock = clock
        self._spoken: deque[tuple[float, list[str]]] = deque()

    def remember(self, text: str) -> None:
        """Note a sentence the bot just voiced."""
        self._spoken.append((self._clock(), _words(text)))
        self._expire()

    def is_echo(self, transcript: str) -> bool:
        self._expire()
        heard = _words(transcript)
        if len(heard) < 2 or not self._spoken:
            return False
        recent = " ".join(" ".join(words) for _, words in self._spoken)
        bigrams = [f"{a} {b}" for a, b in zip(heard, heard[1:])]
        matched = sum(1 for bigram in bigrams if bigram in recent)
        return matched / len(bigrams) >= self._overlap

    def _expire(self) -> None:
        horizon = self._clock() - self._window
        while self._spoken and self._spoken[0][0] < horizon:
            self._spoken.popleft()
