"""A one-tool AstrBot plugin for tests/integration/test_speculation_server.py: a real `@filter.llm_tool`
that records every call (a speculative turn must never run it before its commit)."""

from astrbot.api.event import AstrMessageEvent, filter
from astrbot.api.star import Context, Star


class LiveSpeculationTools(Star):
    def __init__(self, context: Context, config=None) -> None:
        super().__init__(context)
        self.calls: list[dict] = []

    @filter.llm_tool(name="live_spec_book_table")
    async def book_table(self, event: AstrMessageEvent, people: int):
        """Book a table at the restaurant.

        Args:
            people(number): how many people
        """
        self.calls.append({"umo": event.unified_msg_origin, "people": people})
        return f"A table for {people} is booked."
