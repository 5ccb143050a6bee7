"""Live rooms: one shared session, answers broadcast, a prioritized viewer queue, the streamer first."""

import asyncio
import itertools
from dataclasses import replace

import aiohttp

from tests.harness.streams import stream_released
from tests.integration.test_auth_and_chat import create_key

_names = itertools.count()


def room_name() -> str:
    return f"room-{next(_names)}"


def owner(astrbot) -> tuple[str, str]:
    """A fresh streamer (username, JWT): rooms linger after a test, and each user may own only a few."""
    username = f"streamer-{next(_names)}"
    return username, astrbot.jwt(username)


async def post_events(astrbot, room, events, *, token=None, query=None, headers=None):
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{astrbot.base_url}/api/v1/live/rooms/{room}/events",
            params=query or {},
            json={"events": events},
            headers=headers if headers is not None else {"Authorization": f"Bearer {token or astrbot.jwt()}"},
        ) as response:
            return response.status, await response.json()


def danmaku(name, text):
    return {"kind": "danmaku", "user": {"name": name, "id": name}, "text": text, "platform": "test"}


async def viewer_turns(client, count, timeout=30):
    """Read until `count` viewer turns have ended; returns their user_msg frames in order."""
    turns = []
    while len(turns) < count:
        frame = await client.until("user_msg", timeout=timeout)
        if frame["data"].get("viewers"):
            turns.append(frame)
            await client.until("end", turn=frame["turn"], timeout=timeout)
    return turns


async def test_three_members_all_receive_the_same_answer(astrbot, connect, fake):
    room = room_name()
    user, token = owner(astrbot)
    key, _ = await create_key(astrbot, ["chat"])
    streamer = await connect(token=token, room=room)
    overlay = await connect(token=None, api_key=key, username=user, room=room, role="listener", audio=0)
    bridge = await connect(token=None, api_key=key, username=user, room=room, role="bridge")
    for client, role in ((streamer, "streamer"), (overlay, "listener"), (bridge, "bridge")):
        hello = await client.until("hello")
        assert hello["data"]["room"] == {"name": room, "role": role, "audio": role != "listener"}
    snapshot = await overlay.until("room")
    while snapshot["data"]["members"] != {"streamer": 1, "bridge": 1, "listener": 1}:
        snapshot = await overlay.until("room")
    assert snapshot["data"]["you"] == {"role": "listener", "audio": False}

    fake.script_reply("Hello Mika, welcome to the stream! Nice to see you.")
    await bridge.send({"t": "text_input", "text": "hi there", "user": {"name": "Mika", "id": "42"}})
    seen = []
    for client in (streamer, overlay, bridge):
        user = await client.until("user_msg")
        end = await client.until("end", turn=user["turn"])
        seen.append((user["turn"], user["data"]["viewers"], end["data"]["text"]))
    assert seen[0] == seen[1] == seen[2]
    assert seen[0][1] == [{"name": "Mika", "kind": "danmaku", "text": "hi there", "value": 0}]
    assert seen[0][2] == "Hello Mika, welcome to the stream! Nice to see you."
    prompt = fake.streams[-1].messages[-1]["content"]
    assert 'Viewer "Mika" says: hi there' in str(prompt)
    assert streamer.of_turn(seen[0][0]) and any(f["t"] == "response" for f in streamer.of_turn(seen[0][0]))
    assert not any(f["t"] == "response" for f in overlay.frames), "audio off means no audio frames"

    await overlay.send({"t": "set_audio", "enabled": True})
    assert (await overlay.until("configured"))["data"] == {"receive_audio": True}
    while (await overlay.until("room"))["data"]["you"]["audio"] is not True:
        pass
    await overlay.send({"t": "ping", "data": "only me"})
    assert (await overlay.until("pong"))["data"] == "only me"
    assert not any(f["t"] == "pong" for f in await streamer.drain(0.3))


async def test_a_burst_of_fifty_danmaku_becomes_few_turns_with_paid_first(astrbot, connect, fake):
    room = room_name()
    user, token = owner(astrbot)
    streamer = await connect(token=token, room=room, audio=0)
    await streamer.until("hello")
    for _ in range(12):
        fake.script_reply("Thanks, everyone!")
    burst = [danmaku(f"viewer{i}", f"question number {i}") for i in range(50)]
    burst.insert(40, {"kind": "superchat", "user": {"name": "Rich", "id": "9"}, "text": "good luck!", "value": 30})
    burst.insert(45, {"kind": "gift", "user": {"name": "Kind", "id": "8"}, "gift": {"name": "Rocket", "count": 1}, "value": 100})
    status, body = await post_events(astrbot, room, burst, token=token)
    assert status == 200, body
    # bounded: the 22 oldest lines made way for newer ones, and the answer says which
    assert body["dropped"] == [{"index": i, "reason": "queue_full", "queued": True} for i in range(22)]
    assert body["accepted"] == 30 and body["queue"] == 30

    turns = []
    while True:
        try:
            frame = await streamer.until("user_msg", timeout=8)
        except TimeoutError:
            break
        turns.append(frame)
        await streamer.until("end", turn=frame["turn"])
    kinds = [[v["kind"] for v in t["data"]["viewers"]] for t in turns]
    assert kinds[0] == ["superchat"] and kinds[1] == ["gift"], kinds
    assert 3 <= len(turns) <= 8, kinds  # 28 lines left after the paid ones, five to a turn
    assert all(k == ["danmaku"] * len(k) and 1 <= len(k) <= 5 for k in kinds[2:])
    assert '[Super chat, 30] Viewer "Rich" says: good luck!' in str(fake.streams[0].messages[-1]["content"])
    last = [v["text"] for v in turns[-1]["data"]["viewers"]]
    assert last[-1] == "question number 49"
    snapshots = [f for f in streamer.frames if f["t"] == "room"]
    assert max(f["data"]["queue"] for f in snapshots) <= 30 and snapshots[-1]["data"]["queue"] == 0


async def test_the_streamer_interrupts_a_viewer_answer_and_is_answered_first(astrbot, connect, fake):
    room = room_name()
    user, token = owner(astrbot)
    streamer = await connect(token=token, room=room)
    listener = await connect(token=token, room=room, role="listener")
    await streamer.until("hello")
    fake.script_reply(
        "Let me tell you a very long story about the sea. It starts on a grey morning. "
        "The harbour was quiet and the boats were still. Then the wind changed.",
        interval=0.08,
    )
    status, _ = await post_events(astrbot, room, [danmaku("Mika", "tell us a story")], token=token)
    assert status == 200
    user = await streamer.until("user_msg")
    assert user["data"]["viewers"][0]["name"] == "Mika"
    await streamer.until("response", turn=user["turn"])
    story = fake.streams[-1]

    fake.script_reply("Sure, I'm listening.")
    await streamer.send({"t": "text_input", "text": "hold on, chat"})
    for client in (streamer, listener):
        await client.until("stop_play", turn=user["turn"])
    mine = await streamer.until("user_msg")
    assert mine["data"]["text"] == "hold on, chat" and "viewers" not in mine["data"]
    assert (await streamer.until("end", turn=mine["turn"]))["data"]["text"] == "Sure, I'm listening."
    assert await stream_released(astrbot, story), "the viewer answer's LLM stream must be let go"


async def test_the_queue_waits_for_the_streamer_and_survives_a_member_leaving(astrbot, connect, fake):
    room = room_name()
    user, token = owner(astrbot)
    streamer = await connect(token=token, room=room, audio=0)
    bridge = await connect(token=token, room=room, role="bridge")
    await bridge.until("hello")
    fake.script_reply("A long answer for the streamer, sentence one. Sentence two follows.", interval=0.05)
    await streamer.send({"t": "text_input", "text": "what should we play"})
    mine = await streamer.until("user_msg")
    await bridge.send({"t": "viewer_event", "kind": "danmaku", "user": {"name": "Ren"}, "text": "play chess"})
    await bridge.close()  # the bridge goes away; its danmaku stays queued
    end = await streamer.until("end", turn=mine["turn"])
    assert not end["data"]["interrupted"], "viewer input never interrupts the streamer"
    fake.script_reply("Chess it is, Ren!")
    viewer = (await viewer_turns(streamer, 1))[0]
    assert viewer["data"]["viewers"][0]["text"] == "play chess"


async def test_room_rules_refusals_and_drops(astrbot, connect, fake):
    room = room_name()
    user, token = owner(astrbot)
    listener = await connect(token=token, room=room, role="listener")
    await listener.until("hello")
    await listener.send({"t": "text_input", "text": "let me talk"})
    assert (await listener.until("error"))["code"] == "FORBIDDEN"
    await listener.send_raw(b"\x00\x00" * 320)
    await listener.send_raw(b"\x00\x00" * 320)
    assert (await listener.until("error"))["code"] == "FORBIDDEN"
    bridge = await connect(token=token, room=room, role="bridge")
    await bridge.until("hello")
    fake.script_reply("Thanks!", ttft=0.5)
    await bridge.send({"t": "viewer_event", "kind": "danmaku", "user": {"name": "A"}, "text": "same words"})
    await bridge.send({"t": "viewer_event", "kind": "danmaku", "user": {"name": "B"}, "text": "Same  words"})
    assert (await bridge.until("viewer_dropped"))["data"]["reason"] == "duplicate"
    await bridge.send({"t": "viewer_event", "kind": "entry", "user": {"name": "C"}})
    assert (await bridge.until("viewer_dropped"))["data"]["reason"] == "ignored"
    await bridge.send({"t": "viewer_event", "kind": "laser", "user": {"name": "C"}})
    assert (await bridge.until("error"))["code"] == "INVALID_MESSAGE_FORMAT"
    await bridge.send({"t": "ping", "data": "still here"})
    assert (await bridge.until("pong"))["data"] == "still here"

    plain = await connect(token=token)
    await plain.until("hello")
    await plain.send({"t": "viewer_event", "kind": "danmaku", "user": {"name": "A"}, "text": "hi"})
    assert (await plain.until("error"))["code"] == "NOT_IN_ROOM"

    bad = await connect(token=token, room="no spaces allowed")
    code, frames = await bad.closed()
    assert code == 1008 and frames[0]["code"] == "INVALID_MESSAGE_FORMAT"


async def test_http_ingestion_needs_credentials_and_an_open_room(astrbot, connect, fake):
    status, body = await post_events(astrbot, "nobody-here", [danmaku("A", "hi")])
    assert (status, body["code"]) == (404, "ROOM_NOT_FOUND")
    status, body = await post_events(astrbot, "nobody-here", [danmaku("A", "hi")], headers={})
    assert (status, body["code"]) == (401, "UNAUTHORIZED")
    room = room_name()
    user, token = owner(astrbot)
    streamer = await connect(token=token, room=room, audio=0)
    await streamer.until("hello")
    status, body = await post_events(astrbot, room, [{"kind": "danmaku", "user": {"name": "A"}}], token=token)
    assert (status, body["code"]) == (400, "MISSING_FIELD")
    key, _ = await create_key(astrbot, ["chat"])
    fake.script_reply("Hi A!")
    status, body = await post_events(
        astrbot, room, [danmaku("A", "hello from youtube")], query={"username": user}, headers={"X-API-Key": key}
    )
    assert status == 200 and body["accepted"] == 1
    assert (await viewer_turns(streamer, 1))[0]["data"]["viewers"][0]["text"] == "hello from youtube"
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{astrbot.base_url}/api/v1/live/rooms", headers={"Authorization": f"Bearer {token}"}
        ) as response:
            listed = (await response.json())["rooms"]
    mine = next(r for r in listed if r["name"] == room)
    assert mine["queue"] == 0 and mine["members"] == {"streamer": 1, "bridge": 0, "listener": 0}


async def test_rooms_per_user_are_limited(astrbot, connect, fake, tune):
    limits = astrbot.plugin().settings.limits
    tune(limits=replace(limits, max_rooms_per_user=1))
    token = astrbot.jwt("room-limit-user")  # a user with no rooms from other tests
    first = await connect(token=token, room=room_name())
    await first.until("hello")
    second = await connect(token=token, room=room_name())
    code, frames = await second.closed()
    assert code == 1008 and frames[0]["code"] == "TOO_MANY_ROOMS"


async def test_bilibili_danmaku_produce_spoken_answers_in_the_room(astrbot, connect, fake, tune):
    from live.config import BilibiliSettings
    from tests.harness.fake_bilibili import FakeBilibili

    plugin = astrbot.plugin()
    room = room_name()
    user, token = owner(astrbot)
    async with FakeBilibili() as bilibili:

        async def start_feeds():
            plugin.feeds.start()

        async def stop_feeds():
            await plugin.feeds.stop()

        streamer = await connect(token=token, room=room)
        await streamer.until("hello")
        tune(bilibili=BilibiliSettings(room_id=bilibili.short_id, live_room=room, room_owner=user, api_base=bilibili.api_base))
        astrbot.call(start_feeds)
        try:
            await bilibili.wait_connected(timeout=15)
            fake.script_reply("Thank you so much for the super chat, Rich!")
            fake.script_reply("Hi Mika, glad you're here!")
            await bilibili.super_chat("Rich", 9, "you sing great", 30)
            await bilibili.danmaku("Mika", 42, "hello from bilibili")
            turns = await viewer_turns(streamer, 2)
            answered = [v for t in turns for v in t["data"]["viewers"]]
            assert [(v["name"], v["kind"], v["text"]) for v in answered] == [
                ("Rich", "superchat", "you sing great"),
                ("Mika", "danmaku", "hello from bilibili"),
            ]
            assert answered[0]["value"] == 30
            assert any(f["t"] == "response" for f in streamer.of_turn(turns[1]["turn"])), "the answer is spoken"
            assert '[Super chat, 30 CNY] Viewer "Rich" says: you sing great' in str(fake.streams[0].messages[-1]["content"])
            status = astrbot.plugin().feeds.status()
            assert status[0]["connected"] and status[0]["delivered"] == 2
        finally:
            astrbot.call(stop_feeds)


async def list_rooms(astrbot, token):
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{astrbot.base_url}/api/v1/live/rooms", headers={"Authorization": f"Bearer {token}"}) as r:
            return [room["name"] for room in (await r.json())["rooms"]]


async def test_an_empty_room_lingers_then_closes(astrbot, connect, fake, tune):
    room = room_name()
    user, token = owner(astrbot)
    tune(room_linger_s=1.0)
    member = await connect(token=token, room=room)
    await member.until("hello")
    await member.close()
    assert room in await list_rooms(astrbot, token)  # kept for a streamer who reloads the page
    for _ in range(100):
        if room not in await list_rooms(astrbot, token):
            break
        await asyncio.sleep(0.1)
    assert room not in await list_rooms(astrbot, token)


# ---------------------------------------------------------------- every drop is told to its sender

BUSY_REPLY = " ".join(f"word{i}" for i in range(200)) + "."


async def busy_room(astrbot, connect, fake):
    """A room whose streamer's own turn is being answered, so the queue keeps what it takes in."""
    room = room_name()
    user, token = owner(astrbot)
    streamer = await connect(token=token, room=room, audio=0)
    await streamer.until("hello")
    fake.script_reply(BUSY_REPLY, ttft=0.05, interval=0.05)  # about 10 s: longer than the test
    await streamer.send({"t": "text_input", "text": "talk for a while"})
    await streamer.until("bot_delta_chunk")
    return room, user, token, streamer


def lines(prefix, n):
    return [danmaku(f"{prefix}{i}", f"{prefix} line {i}") for i in range(n)]


async def test_http_items_pushed_out_by_the_same_request_are_in_its_answer(astrbot, connect, fake):
    """Found by a tester: 35 lines into a queue of 30 answered `accepted: 35` (or 32) and named no push-out."""
    room, _, token, _ = await busy_room(astrbot, connect, fake)
    status, body = await post_events(astrbot, room, lines("h", 35), token=token)
    assert status == 200
    assert body["dropped"] == [{"index": i, "reason": "queue_full", "queued": True} for i in range(5)]
    assert (body["accepted"], body["queue"]) == (30, 30)


async def test_queued_items_pushed_out_later_are_told_to_their_sender_or_the_room(astrbot, connect, fake):
    """A bridge's lines pushed out later reach that bridge; lines of a sender that can no longer be told
    (an answered HTTP request, a bridge that left) reach the streamer and the bridges, with `via`;
    listeners hear nothing of it."""
    room, user, token, streamer = await busy_room(astrbot, connect, fake)
    bridge = await connect(token=token, room=room, role="bridge")
    leaver = await connect(token=token, room=room, role="bridge")
    listener = await connect(token=token, room=room, role="listener", audio=0)
    for client in (bridge, leaver, listener):
        await client.until("hello")
    for event in lines("b", 3):
        await bridge.send({"t": "viewer_event", **event})
    await bridge.send({"t": "ping", "data": "sent"})
    await bridge.until("pong")
    await leaver.send({"t": "viewer_event", **danmaku("gone0", "a line from a bridge that leaves")})
    await leaver.send({"t": "ping", "data": "sent"})
    await leaver.until("pong")
    await leaver.close()
    while True:  # the room has seen the bridge leave
        snapshot = await streamer.until("room")
        if snapshot["data"]["members"]["bridge"] == 1:
            break
    status, first = await post_events(astrbot, room, lines("h", 26), token=token)
    assert (status, first["accepted"], first["dropped"], first["queue"]) == (200, 26, [], 30)
    status, second = await post_events(astrbot, room, lines("n", 5), token=token)
    assert (status, second["accepted"], second["dropped"], second["queue"]) == (200, 5, [], 30)

    def told(frames):
        return [(f["data"]["viewer"]["name"], f["data"]["reason"], f["data"].get("queued"), f["data"].get("via"))
                for f in frames if f["t"] == "viewer_dropped"]  # fmt: skip

    await bridge.send({"t": "ping", "data": "after"})
    await bridge.until("pong", data="after")
    assert told(bridge.frames) == [
        ("b0", "queue_full", True, None), ("b1", "queue_full", True, None), ("b2", "queue_full", True, None),
        ("gone0", "queue_full", True, "socket"), ("h0", "queue_full", True, "http"),
    ]  # fmt: skip
    await streamer.send({"t": "ping", "data": "after"})
    await streamer.until("pong", data="after")
    assert told(streamer.frames) == [("gone0", "queue_full", True, "socket"), ("h0", "queue_full", True, "http")]
    await listener.send({"t": "ping", "data": "after"})
    await listener.until("pong", data="after")
    assert told(listener.frames) == []
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{astrbot.base_url}/api/v1/live/rooms", headers={"Authorization": f"Bearer {token}"}) as r:
            listed = next(x for x in (await r.json())["rooms"] if x["name"] == room)
    assert listed["dropped"] == {"queue_full": 5}
