"""Checks on the fake LLM's streams after a barge-in."""

import asyncio


def story_stream(fake):
    return next(c for c in reversed(fake.streams) if "tell me a long story" in str(c.messages[-1]))


async def stream_released(astrbot, stream) -> bool:
    """The agent let go of its LLM stream: the HTTP stream was closed within a second.

    AstrBot 4.29's OpenAI provider leaves an abandoned SDK stream to the cyclic garbage
    collector; Live Mode closes it itself (live/host/llm_requests.py), so no collection
    is needed or forced here.
    """
    return await eventually(lambda: stream.closed_early, timeout=1.0)


async def eventually(check, timeout=5.0):
    for _ in range(int(timeout / 0.05)):
        if check():
            return True
        await asyncio.sleep(0.05)
    return check()
