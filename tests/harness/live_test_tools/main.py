"""A small AstrBot plugin for the realtime-host tests: real `@filter.llm_tool` tools, loaded into the
booted AstrBot by `tests/integration/test_realtime_host.py` and uninstalled after it.

Each tool notes what it saw (`calls`, `cancelled`), so a test can check that the host ran it with the
conversation's own event and that a stopped call really stopped the tool.
"""

import asyncio

from astrbot.api.event import AstrMessageEvent, filter
from astrbot.api.star import Context, Star


class LiveTestTools(Star):
    def __init__(self, context: Context, config=None) -> None:
        super().__init__(context)
        self.calls: list[dict] = []
        self.cancelled: list[str] = []

    @filter.llm_tool(name="live_probe_forecast")
    async def forecast(self, event: AstrMessageEvent, city: str, days: int):
        """The weather forecast for a city.

        Args:
            city(string): the city to forecast
            days(number): how many days ahead
        """
        self.calls.append({"tool": "forecast", "umo": event.unified_msg_origin, "role": event.role,
                           "sender": event.get_sender_id(), "city": city, "days": days})  # fmt: skip
        return f"{city}: sunny for {days} days, asked by {event.get_sender_name()}"

    @filter.llm_tool(name="live_probe_broken")
    async def broken(self, event: AstrMessageEvent):
        """A tool that always fails."""
        self.calls.append({"tool": "broken", "umo": event.unified_msg_origin})
        raise RuntimeError("the probe tool broke on purpose")

    @filter.llm_tool(name="live_probe_slow")
    async def slow(self, event: AstrMessageEvent, seconds: float):
        """A tool that takes its time.

        Args:
            seconds(number): how long to take
        """
        self.calls.append({"tool": "slow", "umo": event.unified_msg_origin, "seconds": seconds})
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            self.cancelled.append("slow")
            raise
        return f"done after {seconds} s"

    @filter.llm_tool(name="live_probe_direct")
    async def direct(self, event: AstrMessageEvent):
        """A tool that answers the user itself instead of returning a result."""
        self.calls.append({"tool": "direct", "umo": event.unified_msg_origin})
        yield event.plain_result("Sent straight to the user.")

    @filter.llm_tool(name="live_probe_hidden")
    async def hidden(self, event: AstrMessageEvent):
        """A tool the tests deactivate."""
        return "hidden tool ran"
