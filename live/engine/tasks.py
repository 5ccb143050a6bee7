"""Ending tasks without waiting for ever.

A cancelled task normally ends at its next `await`; one stuck in code that
swallows the cancel (a provider's SDK, a thread it waits on) must not hold a
barge-in or a disconnect. Every wait after a cancel goes through here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from ..log import logger

CANCEL_WAIT_S = 2.0


async def wait_ended(tasks: Iterable[asyncio.Task | None], timeout: float | None = None) -> bool:
    """Wait at most `timeout` (`CANCEL_WAIT_S`) for `tasks` to end; False (and a warning) if one still runs."""
    timeout = CANCEL_WAIT_S if timeout is None else timeout
    pending = {task for task in tasks if task is not None and not task.done()}
    if not pending:
        return True
    ended, still = await asyncio.wait(pending, timeout=timeout)
    for task in ended:
        if not task.cancelled():
            task.exception()  # retrieved: its owner reports failures, the loop need not
    if still:
        names = ", ".join(sorted(task.get_name() for task in still))
        logger.warning("live: %s did not end within %.1f s of its cancel; letting it go", names, timeout)
    return not still


async def cancel_and_wait(tasks: Iterable[asyncio.Task | None], timeout: float | None = None) -> bool:
    tasks = [task for task in tasks if task is not None]
    for task in tasks:
        task.cancel()
    return await wait_ended(tasks, timeout)
