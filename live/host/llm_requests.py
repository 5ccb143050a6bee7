"""The LLM requests a live turn makes in the host: none starts after the turn is abandoned, and
every stream it opened is closed the moment it is.

AstrBot 4.29's OpenAI provider (`openai_source._query_stream`) iterates the SDK's stream without
closing it. When the agent stops at a chunk boundary (a barge-in, a client gone) the stream is
abandoned, and the SDK stream and its generator hold each other: the HTTP response stays open,
and the model keeps generating for nobody, until the cyclic garbage collector happens to run.

The provider obtains every request through its module's `retry_provider_request`. While a live
event is processed, its pipeline task carries the turn's `TurnRequests` in a context variable
(set by our first hook, so the tasks the host starts for the event, such as the conversation-title
request, inherit it too). Wrapped for that module only, `retry_provider_request` refuses to start
a request for an abandoned turn and hands every stream it opens to the turn, which closes it when
it is abandoned. Other events pass through untouched. Installed only on the host versions this
was verified against; elsewhere the host's own behaviour stands.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import Callable
from typing import Any

from ..log import logger


VERIFIED_HOSTS = ("4.29.",)  # astrbot versions whose OpenAI provider was read and tested for this
CLOSE_TIMEOUT_S = 5.0  # closing a response is a socket close; bounded so no task can hang on it
_WRAPPED_MARK = "_live_wrapped"

_current: contextvars.ContextVar[TurnRequests | None] = contextvars.ContextVar("live_turn_requests", default=None)
_closing: set[asyncio.Task] = set()  # close tasks, kept until done (the loop holds tasks weakly)
_installed: Callable[..., Any] | None = None  # our wrapper, while it is in place


class TurnAbandoned(Exception):
    """Raised in place of an LLM request for a live turn whose client left or barged in."""


class TurnRequests:
    """One live turn's LLM requests in the host."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.abandoned = False
        self._streams: list[Any] = []

    def bind(self) -> None:
        """Claim the running pipeline task (and the tasks it starts from now on) for this turn."""
        _current.set(self)

    def check(self) -> None:
        if self.abandoned:
            raise TurnAbandoned(f"Live Mode: the client of turn {self.label} left or interrupted it, so this LLM request was not sent")

    def adopt(self, stream: Any) -> None:
        if self.abandoned:
            _close_soon([stream])
            return
        self._streams = [s for s in self._streams if not _is_closed(s)]
        self._streams.append(stream)

    def abandon(self) -> None:
        """The turn is over for its client: no new request starts, every open stream is closed now."""
        if self.abandoned:
            return
        self.abandoned = True
        streams, self._streams = self._streams, []
        _close_soon(streams)


def _is_closed(stream: Any) -> bool:
    return bool(getattr(getattr(stream, "response", None), "is_closed", False))


def _close_soon(streams: list[Any]) -> None:
    open_streams = [s for s in streams if not _is_closed(s)]
    if not open_streams:
        return
    task = asyncio.get_running_loop().create_task(_close_all(open_streams), name="live-close-llm-streams")
    _closing.add(task)
    task.add_done_callback(_closing.discard)


async def _close_all(streams: list[Any]) -> None:
    for stream in streams:
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await stream.close()
        except Exception as exc:  # a response that cannot even close is the host's to report
            logger.debug("live: closing an abandoned LLM stream failed: %s", exc)


def _owned(original: Callable[..., Any]) -> Callable[..., Any]:
    from openai import AsyncStream

    async def retry_provider_request(*args: Any, **kwargs: Any) -> Any:
        owner = _current.get()
        if owner is None:
            return await original(*args, **kwargs)
        owner.check()
        result = await original(*args, **kwargs)
        if isinstance(result, AsyncStream):
            owner.adopt(result)
        return result

    setattr(retry_provider_request, _WRAPPED_MARK, original)
    return retry_provider_request


def install(host_version: str | None = None) -> bool:
    """Wrap the OpenAI provider's request function; returns whether this host version is wrapped."""
    from astrbot.core.config.default import VERSION
    from astrbot.core.provider.sources import openai_source

    version = host_version or VERSION
    current = getattr(openai_source, "retry_provider_request", None)
    original = getattr(current, _WRAPPED_MARK, current)  # a reload: wrap the host's, not our old wrapper
    if not version.startswith(VERIFIED_HOSTS) or not inspect.iscoroutinefunction(original):
        logger.info("live: AstrBot %s is not one this plugin closes abandoned LLM streams on; the host's own behaviour stands", version)
        return False
    global _installed
    _installed = openai_source.retry_provider_request = _owned(original)
    return True


def uninstall() -> None:
    """Put the host's function back, unless a newer copy of this plugin (a reload) wrapped it since."""
    global _installed
    from astrbot.core.provider.sources import openai_source

    if _installed is not None and openai_source.retry_provider_request is _installed:
        openai_source.retry_provider_request = getattr(_installed, _WRAPPED_MARK)
    _installed = None
