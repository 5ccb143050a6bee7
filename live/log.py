"""The plugin's one logger.

Only `live/host` touches AstrBot: when the plugin loads it hands the host's
logger to `logger.use()` (AstrBot routes it to this plugin's own logger, whose
level the dashboard sets). Until then, and outside AstrBot (unit tests,
tools), lines go to the standard library's "astrbot" logger.
"""

from __future__ import annotations

import logging
from typing import Any


class PluginLogger:
    """A stable object every module imports at load time, bound to the real logger later."""

    def __init__(self) -> None:
        self._target: Any = logging.getLogger("astrbot")

    def use(self, target: Any) -> None:
        self._target = target

    def __getattr__(self, name: str) -> Any:  # debug, info, warning, error, exception, ...
        return getattr(self._target, name)


logger = PluginLogger()
