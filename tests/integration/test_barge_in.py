"""Barge-in really stops the agent, drops the old turn, and keeps only what was heard."""

import asyncio

from tests.harness.streams import story_stream, stream_released

LONG_REPLY = (
    "Once upon a time there was a lighthouse keeper. Every night she climbed the stairs. "
    "She polished the great lamp until it shone. Ships passed safely all winter long. "
    "One night a storm came from the north. The waves rose higher than the tower. "
    "Still the lamp kept burning until the morning came."
)


async def start_long_turn(client, fake, interval=0.08):
    fake.script_reply(LONG_REPLY, ttft=0.05, interval=interval)
    await client.send({"t": "text_input", "text": "tell me a long story"})
    user = await client.until("user_msg")
    first_audio = await client.until("response", turn=user["turn"])
    return user["turn"], first_audio


async def test_interrupt_stops_the_agent_and_nothing_of_the_turn_follows_stop_play(astrbot, connect, fake):
    client = await connect()
    turn, first_audio = await start_long_turn(client, fake)
    await client.send({"t": "interrupt", "turn": turn, "played_ms": first_audio["duration_ms"]})
    stop = await client.until("stop_play", turn=turn, timeout=5)
    later = await client.drain(1.0)
    old = [f for f in later if f.get("turn") == turn]
    assert [f["t"] for f in old] == ["end"]  # only the turn's closing frame, right after stop_play
    assert old[0]["data"]["interrupted"] is True
    assert client.frames[client.frames.index(stop) + 1]["t"] == "end"
    stream = story_stream(fake)
    assert await stream_released(astrbot, stream), "the barge-in must stop the agent reading its LLM stream"
    assert stream.tokens_sent < len(LONG_REPLY.split())


async def test_history_keeps_only_the_heard_part_marked_interrupted(connect, fake):
    client = await connect(conversation_id="heard-history-test")
    turn, first_audio = await start_long_turn(client, fake)
    heard_sentence = first_audio  # the first clause played fully, nothing after it
    await client.send({"t": "interrupt", "turn": turn, "played_ms": heard_sentence["duration_ms"]})
    await client.until("stop_play", turn=turn)
    fake.script_reply("Sure, what next?")
    await client.send({"t": "text_input", "text": "never mind that"})
    user = await client.until("user_msg")
    await client.until("end", turn=user["turn"])
    messages = fake.streams[-1].messages
    roles = [m["role"] for m in messages]
    assistant = [str(m["content"]) for m in messages if m["role"] == "assistant"]
    assert any("tell me a long story" in str(m.get("content")) for m in messages if m["role"] == "user")
    assert assistant, roles
    cut = assistant[-1]
    assert cut == "Once upon a time there was a lighthouse keeper.…"


async def test_the_interrupted_end_tells_the_heard_text_that_history_keeps(connect, fake):
    client = await connect()
    turn, first_audio = await start_long_turn(client, fake)
    await client.send({"t": "interrupt", "turn": turn, "played_ms": first_audio["duration_ms"]})
    end = await client.until("end", turn=turn)
    assert end["data"] == {"interrupted": True, "text": "", "heard": "Once upon a time there was a lighthouse keeper."}


async def test_an_answer_cut_within_its_emotion_tag_keeps_no_assistant_message(connect, fake):
    """The tag is never voiced, so half of "[joy] Hello!"'s audio is half of "Hello!": no word yet."""
    client = await connect(conversation_id="tag-cut-history-test")
    fake.script_reply("[joy] Hello! " + LONG_REPLY, ttft=0.05, interval=0.08)
    await client.send({"t": "text_input", "text": "tell me a long story"})
    turn = (await client.until("user_msg"))["turn"]
    first_audio = await client.until("response", turn=turn)
    await client.send({"t": "interrupt", "turn": turn, "played_ms": first_audio["duration_ms"] // 2})
    assert (await client.until("end", turn=turn))["data"]["heard"] == ""
    fake.script_reply("Sure, what next?")
    await client.send({"t": "text_input", "text": "never mind that"})
    await client.until("end", turn=(await client.until("user_msg"))["turn"])
    spoken = [(m["role"], str(m["content"])) for m in fake.streams[-1].messages if m["role"] in ("user", "assistant")]
    asked = next(i for i, (role, text) in enumerate(spoken) if role == "user" and "tell me a long story" in text)
    assert spoken[asked + 1][0] == "user" and "never mind that" in spoken[asked + 1][1], spoken


async def test_new_text_while_busy_interrupts_by_default(connect, fake):
    client = await connect()
    turn, _ = await start_long_turn(client, fake)
    fake.script_reply("Okay, switching topics now.")
    await client.send({"t": "text_input", "text": "stop, talk about cats"})
    await client.until("stop_play", turn=turn)
    user = await client.until("user_msg")
    assert user["turn"] != turn
    end = await client.until("end", turn=user["turn"])
    assert end["data"]["text"] == "Okay, switching topics now."


async def test_busy_policy_reject_answers_processing_error(connect, fake, tune):
    tune(busy_policy="reject")
    client = await connect()
    turn, _ = await start_long_turn(client, fake, interval=0.05)
    await client.send({"t": "text_input", "text": "are you there"})
    error = await client.until("error")
    assert error["code"] == "PROCESSING_ERROR"
    end = await client.until("end", turn=turn, timeout=20)
    assert end["data"]["interrupted"] is False


async def test_disconnect_mid_turn_leaves_no_task_behind(astrbot, connect, fake):
    def live_tasks():
        async def count():
            return sorted(t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("live-"))

        return astrbot.call(count)

    before = live_tasks()
    client = await connect()
    await start_long_turn(client, fake)
    await client.close()
    for _ in range(100):
        if set(live_tasks()) <= set(before):
            break
        await asyncio.sleep(0.1)
    assert set(live_tasks()) <= set(before), (before, live_tasks())
    assert await stream_released(astrbot, story_stream(fake))
