"""What every live-stream platform client shares: the protocol, its status, and the reconnect loop.

A platform client turns a streaming site's chat feed into `ViewerEvent`s. It
owns its connection: `run(emit)` connects, reconnects with backoff when the
connection drops, and only ends when its task is cancelled.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Protocol

from ..engine.events import ViewerEvent
from ..log import logger

Emit = Callable[[ViewerEvent], None]


@dataclass
class PlatformStatus:
    """A platform connection's health, for a status page. Written by the client, read by anyone."""

    connected: bool = False
    last_error: str | None = None
    events: int = 0
    reconnects: int = 0
    connected_since: float | None = None  # time.monotonic() of the last successful connect

    def mark_connected(self) -> None:
        self.connected = True
        self.connected_since = time.monotonic()

    def mark_disconnected(self, error: str | None) -> None:
        self.connected = False
        self.last_error = error

    def to_dict(self) -> dict:
        return asdict(self)


class PlatformClient(Protocol):
    """A live-stream chat source. `run` never returns on its own and raises only CancelledError."""

    name: str
    status: PlatformStatus

    async def run(self, emit: Emit) -> None: ...


def backoff_delay(attempt_delay: float, rng: random.Random | None = None) -> float:
    """Equal jitter: half the delay fixed, half random, so many clients don't reconnect in step."""
    r = (rng or random).random()
    return attempt_delay / 2 + r * attempt_delay / 2


async def run_with_backoff(
    connect_once: Callable[[], Awaitable[None]],
    status: PlatformStatus,
    *,
    initial: float = 1.0,
    maximum: float = 60.0,
    stable_after: float = 30.0,
    log_name: str = "platform",
) -> None:
    """Call `connect_once` forever, sleeping with exponential backoff and jitter between calls.

    `connect_once` returns (or raises) when its connection is over; it calls
    `status.mark_connected()` once the connection is really up. The delay goes
    back to `initial` after a connection that stayed up for `stable_after`
    seconds, so a long-lived link that drops reconnects quickly. Only
    cancellation ends the loop.
    """
    delay = initial
    while True:
        status.connected_since = None
        try:
            await connect_once()
            error = "connection closed by the server"
        except asyncio.CancelledError:
            status.connected = False
            raise
        except Exception as exc:  # noqa: BLE001 - every failure is retried; the reason goes to the status page
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        up_since = status.connected_since
        status.mark_disconnected(error)
        if up_since is not None and time.monotonic() - up_since >= stable_after:
            delay = initial
        wait = backoff_delay(delay)
        logger.warning("%s: %s; reconnecting in %.1f s", log_name, error, wait)
        await asyncio.sleep(wait)
        status.reconnects += 1
        delay = min(delay * 2, maximum)
