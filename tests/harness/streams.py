"""Checks on the fake LLM's streams after a barge-in."""

import asyncio


def story_stream(fake):
    return next(c for c in reversed(fake.streams) if "tell me a long story" in str(c.messages[-1]))


async def stream_released(astrbot, stream) -> bool:
    """The agent let go of its LLM stream.

    AstrBot 4.29's OpenAI provider iterates the SDK stream without closing it, and
    the SDK stream sits in a reference cycle, so an abandoned stream is closed by
    the cyclic garbage collector (usually at once, sometimes seconds later). If it
    is still open after a second, a collection must close it: that can only
    happen if nothing in the agent still reads it.
    """
    if await eventually(lambda: stream.closed_early, timeout=1.0):
        return True

    async def collect():
        import gc

        gc.collect()

    astrbot.call(collect)
    return await eventually(lambda: stream.closed_early, timeout=2.0)


async def eventually(check, timeout=5.0):
    for _ in range(int(timeout / 0.05)):
        if check():
            return True
        await asyncio.sleep(0.05)
    return check()
