"""Frames-per-second limiting: over the limit earns RATE_LIMITED; a flood closes."""

from __future__ import annotations

import time
from collections.abc import Callable


class FrameRateLimiter:
    """Token bucket of `rate` frames per second with a one-second burst.

    `admit()` answers "ok", "drop" (warn the client) or "flood" (disconnect:
    the client kept sending after `flood_after_s` seconds' worth of drops).
    """

    def __init__(self, rate: int, flood_after_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = float(rate)
        self._tokens = float(rate)
        self._clock = clock
        self._last = clock()
        self._dropped = 0.0
        self._flood_at = rate * flood_after_s
        self.last_warning = -1e9

    def admit(self) -> str:
        now = self._clock()
        elapsed, self._last = now - self._last, now
        self._tokens = min(self._rate, self._tokens + elapsed * self._rate)
        self._dropped = max(0.0, self._dropped - elapsed * self._rate)  # forgiven as time passes
        if self._tokens >= 1:
            self._tokens -= 1
            return "ok"
        self._dropped += 1
        return "flood" if self._dropped >= self._flood_at else "drop"

    def should_warn(self) -> bool:
        now = self._clock()
        if now - self.last_warning >= 1.0:
            self.last_warning = now
            return True
        return False
