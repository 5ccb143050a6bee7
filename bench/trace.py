"""Two host-level trace points, so overhead can be split into the live stack's and AstrBot's.

Both sides of the comparison go through the same AstrBot pipeline: an event enters
`PipelineScheduler.execute`, the pipeline's stages run (session, rate limits, safety,
persona, conversation, tools...), and the agent calls the OpenAI SDK's
`chat.completions.create`. Recording when those two calls start (monotonic) gives
"host pipeline" = execute -> create, and "LLM SDK send" = create -> request at the fake.

The wrappers are transparent and only append (name, time) to a list; they are installed
for the duration of a suite and removed afterwards. Nothing of the plugin is patched.
"""

from __future__ import annotations

import functools
import time
from typing import Any

EVENTS: list[tuple[str, float]] = []
_installed: list[tuple[Any, str, Any]] = []


def _wrap(cls: Any, name: str, label: str) -> None:
    original = getattr(cls, name)

    @functools.wraps(original)
    async def traced(*args, **kwargs):
        EVENTS.append((label, time.monotonic()))
        return await original(*args, **kwargs)

    setattr(cls, name, traced)
    _installed.append((cls, name, original))


def _wrap_stop(cls: Any) -> None:
    """Record each agent-stop request with how many active events of that conversation it reached."""
    original = cls.request_agent_stop_all

    @functools.wraps(original)
    def traced(self, umo, *args, **kwargs):
        count = original(self, umo, *args, **kwargs)
        EVENTS.append((f"agent_stop:{count}", time.monotonic()))
        return count

    cls.request_agent_stop_all = traced
    _installed.append((cls, "request_agent_stop_all", original))


def install() -> bool:
    """Idempotent; False when a trace point cannot be found (the split is then left out)."""
    if _installed:
        return True
    try:
        from astrbot.core.pipeline.scheduler import PipelineScheduler
        from astrbot.core.utils.active_event_registry import ActiveEventRegistry
        from openai.resources.chat.completions import AsyncCompletions
    except ImportError:
        return False
    _wrap(PipelineScheduler, "execute", "pipeline")
    _wrap(AsyncCompletions, "create", "llm_create")
    _wrap_stop(ActiveEventRegistry)
    return True


def uninstall() -> None:
    while _installed:
        cls, name, original = _installed.pop()
        setattr(cls, name, original)
    EVENTS.clear()


def stop_requests(after: float, before: float) -> list[int]:
    """Active events reached by each agent-stop request in the window."""
    return [int(name.split(":")[1]) for name, at in EVENTS if name.startswith("agent_stop:") and after <= at <= before]


def first_after(label: str, after: float, before: float | None = None) -> float | None:
    for name, at in EVENTS:
        if name == label and at >= after and (before is None or at <= before):
            return at
    return None
