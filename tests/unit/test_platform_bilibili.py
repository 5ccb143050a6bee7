"""The Bilibili live-chat client: packet codec and WBI signing by known answers, then the whole
client against a local fake Bilibili (real HTTP and WebSocket on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import struct
import zlib
from collections.abc import AsyncIterator

import pytest

from live.platforms import (
    BilibiliLiveClient,
    PlatformStatus,
    ViewerEvent,
    run_with_backoff,
)
from live.platforms.bilibili import (
    Op,
    PacketError,
    command_to_event,
    decode_frame,
    encode_packet,
    protobuf_fields,
    wbi_mixin_key,
    wbi_query,
)
from tests.harness.fake_bilibili import (
    FakeBilibili,
    bundle,
    danmaku_command,
    entry_command,
    gift_command,
    packet,
)

WAIT = 5.0

# ---------------------------------------------------------------- pure: packets


def test_auth_packet_header_matches_the_documented_layout():
    frame = encode_packet(Op.AUTH, {"uid": 0, "roomid": 1})
    total, header_len, protover, op, sequence = struct.unpack(">IHHII", frame[:16])
    assert (total, header_len, protover, op, sequence) == (len(frame), 16, 1, 7, 1)
    assert json.loads(frame[16:]) == {"uid": 0, "roomid": 1}


def test_heartbeat_reply_from_the_docs_decodes_to_its_popularity():
    # bilibili-API-collect's hex dump of a heartbeat reply: popularity 2466 then "[object Object]"
    frame = bytes.fromhex("00000023001000010000000300000000000009a25b6f626a656374204f626a6563745d")
    [reply] = decode_frame(frame)
    assert reply.op == Op.HEARTBEAT_REPLY and int.from_bytes(reply.body[:4], "big") == 2466


def test_zlib_bundle_opens_into_every_packet_in_order():
    commands = [{"cmd": "A"}, {"cmd": "B", "data": {"x": "弹幕"}}, {"cmd": "C"}]
    [frame] = bundle(commands, protover=2)
    packets = list(decode_frame(frame))
    assert [p.op for p in packets] == [5, 5, 5]
    assert [json.loads(p.body) for p in packets] == commands


@pytest.mark.parametrize(
    "frame",
    [
        b"\x00\x00\x00",  # shorter than a header
        struct.pack(">IHHII", 100, 16, 0, 5, 0) + b"{}",  # claims more bytes than the frame has
        struct.pack(">IHHII", 18, 8, 0, 5, 0) + b"{}",  # header length below 16
        struct.pack(">IHHII", 20, 16, 2, 5, 0) + b"junk",  # not zlib
        packet(5, zlib.compress(packet(5, zlib.compress(b"{}"), protover=2)), protover=2),  # bundle in a bundle
    ],
)
def test_malformed_frames_raise_packet_error(frame):
    with pytest.raises(PacketError):
        list(decode_frame(frame))


def test_zip_bomb_is_refused():
    [frame] = bundle([{"cmd": "X", "pad": "0" * (5 << 20)}], protover=2)
    with pytest.raises(PacketError, match="inflates past"):
        list(decode_frame(frame))


# ---------------------------------------------------------------- pure: WBI signing


def test_wbi_signature_matches_the_documented_example():
    # docs/misc/sign/wbi.md in bilibili-API-collect: keys, params, wts and the resulting w_rid
    img, sub = "7cd084941338484aae1ad9425b84077c", "4932caff0ff746eab6f01bf08b70ac45"
    assert wbi_mixin_key(img, sub) == "ea1db124af3c7062474693fa704f4ff8"
    query = wbi_query({"foo": "114", "bar": "514", "zab": 1919810}, img_key=img, sub_key=sub, wts=1702204169)
    assert query == "bar=514&foo=114&wts=1702204169&zab=1919810&w_rid=8f6f2b5b3d485fe1886cec6a0be8c5d4"


def test_wbi_encodes_like_encode_uri_component_and_drops_reserved_characters():
    img, sub = "7cd084941338484aae1ad9425b84077c", "4932caff0ff746eab6f01bf08b70ac45"
    query = wbi_query({"foo": "one one four", "bar": "五一四", "baz": "(x)!*'"}, img_key=img, sub_key=sub, wts=1)
    assert query.startswith("bar=%E4%BA%94%E4%B8%80%E5%9B%9B&baz=x&foo=one%20one%20four&wts=1&w_rid=")


# ---------------------------------------------------------------- pure: commands


def test_interact_word_v2_protobuf_from_a_real_capture():
    # the first fields of a real INTERACT_WORD_V2 data.pb (uid, uname, a bytes field, msg_type)
    pb = base64.b64decode("CLq62owBEgzmpaDmnKhIb3RhcnUiAgMBKAEw")[:26]
    fields = protobuf_fields(pb)
    assert fields[1] == 295083322 and fields[2].decode() == "楠木Hotaru" and fields[5] == 1


def test_danmaku_name_from_the_newer_user_block_when_the_sender_array_is_empty():
    event = command_to_event(danmaku_command("Mika", 42, "hi", legacy_sender=False))
    assert event == ViewerEvent("danmaku", "Mika", "42", text="hi", platform="bilibili")


def test_old_style_cmd_suffix_and_silver_gifts():
    old = danmaku_command("Ren", 7, "yo") | {"cmd": "DANMU_MSG:4:0:2:2:2:0"}
    assert command_to_event(old) == ViewerEvent("danmaku", "Ren", "7", text="yo", platform="bilibili")
    free = command_to_event(gift_command("Ren", 7, "辣条", num=10, coin_type="silver", total_coin=1000))
    assert free is not None and free.value == 0 and free.count == 10


@pytest.mark.parametrize(
    "command",
    [
        {"cmd": "DANMU_MSG", "info": "not a list"},
        {"cmd": "SUPER_CHAT_MESSAGE", "data": {"message": "x", "price": "lots"}},
        {"cmd": "SEND_GIFT", "data": None},
        {"cmd": "INTERACT_WORD_V2", "data": {"pb": "!!not base64!!"}},
        {"cmd": "INTERACT_WORD_V2", "data": {"pb": base64.b64encode(b"\x12\x50abc").decode()}},  # truncated
        entry_command("Ren", 7, msg_type=2),  # a follow, not an entry
        {"cmd": "WATCHED_CHANGE", "data": {"num": 5}},
        {"no": "cmd"},
    ],
)
def test_commands_that_are_not_viewer_events_give_none(command):
    assert command_to_event(command) is None


# ---------------------------------------------------------------- backoff


async def test_backoff_grows_and_never_raises_until_cancelled():
    status = PlatformStatus()
    calls: list[float] = []

    async def failing() -> None:
        calls.append(asyncio.get_running_loop().time())
        raise ConnectionRefusedError("nobody home")

    task = asyncio.create_task(run_with_backoff(failing, status, initial=0.02, maximum=0.08))
    while len(calls) < 5:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert gaps[0] >= 0.01 and gaps[-1] >= 0.04  # half of the delay is never jittered away
    assert status.reconnects >= 4 and status.last_error == "ConnectionRefusedError: nobody home"
    assert not status.connected


# ---------------------------------------------------------------- the client against the fake server


class Running:
    """A client running in a task, its events in a queue."""

    def __init__(self, client: BilibiliLiveClient) -> None:
        self.client = client
        self.events: asyncio.Queue[ViewerEvent] = asyncio.Queue()
        self.task = asyncio.create_task(client.run(self.events.put_nowait))

    async def next(self) -> ViewerEvent:
        return await asyncio.wait_for(self.events.get(), WAIT)

    async def stop(self) -> None:
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


def make_client(fake: FakeBilibili, **kw) -> BilibiliLiveClient:
    kw.setdefault("backoff_initial", 0.05)
    kw.setdefault("backoff_maximum", 0.2)
    return BilibiliLiveClient(fake.short_id, api_base=fake.api_base, main_api_base=fake.api_base, **kw)


@pytest.fixture
async def fake() -> AsyncIterator[FakeBilibili]:
    async with FakeBilibili() as server:
        yield server


@pytest.fixture
async def running(fake: FakeBilibili) -> AsyncIterator[Running]:
    run = Running(make_client(fake))
    await fake.wait_connected()
    yield run
    await run.stop()


async def test_auth_packet_carries_resolved_room_token_and_buvid(fake, running):
    [auth] = fake.auths
    assert auth["roomid"] == fake.room_id != fake.short_id  # resolved via room_init
    assert auth["key"] == fake.token and auth["buvid"] == fake.buvid3
    assert (auth["uid"], auth["protover"], auth["platform"], auth["type"]) == (0, 2, "web", 2)
    [(_, query, cookies)] = fake.requests_to("/xlive/web-room/v1/index/getDanmuInfo")
    assert query["id"] == str(fake.room_id) and {"type", "wts", "w_rid"} <= query.keys()
    assert cookies["buvid3"] == fake.buvid3
    assert running.client.real_room_id == fake.room_id and running.client.status.connected


async def test_every_event_kind(fake, running):
    await fake.danmaku("Mika", 42, "hello")
    await fake.super_chat("Ren", 7, "good luck", price=30)
    await fake.gift("Ann", 8, "小花花", num=2, coin_type="gold", total_coin=200)
    await fake.guard("Bo", 9, "舰长", num=2, price=198000)
    await fake.entry("Cy", 10)
    await fake.entry("Di", 11, v2=True)
    got = [await running.next() for _ in range(6)]
    assert got == [
        ViewerEvent("danmaku", "Mika", "42", text="hello", platform="bilibili"),
        ViewerEvent("superchat", "Ren", "7", text="good luck", value=30.0, platform="bilibili"),
        ViewerEvent("gift", "Ann", "8", value=0.2, gift_name="小花花", count=2, platform="bilibili"),
        ViewerEvent("guard", "Bo", "9", value=396.0, gift_name="舰长", count=2, platform="bilibili"),
        ViewerEvent("entry", "Cy", "10", platform="bilibili"),
        ViewerEvent("entry", "Di", "11", platform="bilibili"),
    ]
    assert running.client.status.events == 6


async def test_multi_packet_zlib_frame_and_plain_json(fake, running):
    commands = [danmaku_command(f"v{i}", i, f"line {i}") for i in range(1, 4)]
    commands.insert(1, {"cmd": "ONLINE_RANK_COUNT", "data": {"count": 3}})  # ignored on the way
    await fake.send_commands(commands, protover=2)
    await fake.danmaku("Raw", 99, "uncompressed", protover=0)
    got = [await running.next() for _ in range(4)]
    assert [(e.viewer_name, e.text) for e in got] == [("v1", "line 1"), ("v2", "line 2"), ("v3", "line 3")] + [
        ("Raw", "uncompressed")
    ]


async def test_brotli_bundle_when_brotli_is_installed(fake, running):
    pytest.importorskip("brotli")
    await fake.danmaku("Br", 5, "compressed", protover=3)
    assert (await running.next()).text == "compressed"


async def test_heartbeats_are_sent_and_popularity_read(fake):
    run = Running(make_client(fake, heartbeat_interval=0.05))
    try:
        await fake.wait_heartbeats(3)
        await fake.wait_until(lambda: run.client.popularity == fake.popularity, WAIT, "the popularity")
    finally:
        await run.stop()


async def test_malformed_input_does_not_kill_the_connection(fake, running):
    await fake.send_raw(b"\x00\x01")  # shorter than a header
    await fake.send_raw(struct.pack(">IHHII", 999, 16, 0, 5, 0) + b"{}")  # bad length
    await fake.send_raw(packet(5, b"{not json", protover=0))
    await fake.send_raw(packet(5, b"\xff\xfe", protover=0))  # not UTF-8
    await fake.send_raw(packet(5, b"[1, 2]", protover=0))  # JSON, but not a command
    await fake.send_raw(packet(99, b"?", protover=0))  # unknown op
    await fake.send_raw(packet(5, b"junk", protover=2))  # not zlib
    await fake.send_raw(packet(5, b"junk", protover=3))  # brotli: skipped either way
    await fake.send_commands([{"cmd": "SEND_GIFT", "data": {"giftName": "x"}}])  # fields missing
    await fake.danmaku("Still", 1, "alive")
    assert (await running.next()).text == "alive"
    assert len(fake.auths) == 1 and running.client.status.reconnects == 0


async def test_consumer_errors_do_not_cut_the_feed(fake):
    seen: list[ViewerEvent] = []

    def emit(event: ViewerEvent) -> None:
        seen.append(event)
        if len(seen) == 1:
            raise RuntimeError("consumer bug")

    task = asyncio.create_task(make_client(fake).run(emit))
    try:
        await fake.wait_connected()
        await fake.danmaku("a", 1, "one")
        await fake.danmaku("b", 2, "two")
        await fake.wait_until(lambda: len(seen) == 2, WAIT, "both events")
        assert [e.text for e in seen] == ["one", "two"]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_reconnects_after_the_server_drops_it_and_keeps_emitting(fake, running):
    await fake.danmaku("before", 1, "one")
    assert (await running.next()).text == "one"
    await fake.drop_connections()
    await fake.wait_connected(auths=2)
    await fake.danmaku("after", 2, "two")
    assert (await running.next()).text == "two"
    status = running.client.status
    assert status.connected and status.reconnects == 1 and "closed by the server" in (status.last_error or "")
    # the room id is remembered; only the token is fetched again
    assert len(fake.requests_to("/room/v1/Room/room_init")) == 1
    assert len(fake.requests_to("/xlive/web-room/v1/index/getDanmuInfo")) == 2


async def test_rejected_auth_is_retried_with_backoff(fake):
    fake.reject_auth = True
    run = Running(make_client(fake))
    try:
        await fake.wait_until(lambda: len(fake.auths) >= 2, WAIT, "two auth attempts")
        assert not run.client.status.connected and "auth rejected" in (run.client.status.last_error or "")
        fake.reject_auth = False
        await fake.wait_connected()
        await fake.danmaku("ok", 1, "finally")
        assert (await run.next()).text == "finally"
    finally:
        await run.stop()


async def test_login_cookie_gives_the_uid_and_unknown_room_is_reported(fake):
    run = Running(make_client(fake, cookie=f"SESSDATA={fake.sessdata}; bili_jct=x"))
    try:
        await fake.wait_connected()
        assert fake.auths[0]["uid"] == fake.login_mid
        [(_, _, cookies)] = fake.requests_to("/x/web-interface/nav")
        assert cookies["SESSDATA"] == fake.sessdata
    finally:
        await run.stop()
    missing = Running(BilibiliLiveClient(777, api_base=fake.api_base, main_api_base=fake.api_base))
    try:
        await fake.wait_until(lambda: missing.client.status.last_error is not None, WAIT, "an error")
        assert "code 60004" in (missing.client.status.last_error or "")
    finally:
        await missing.stop()


async def test_cancellation_ends_everything(fake):
    before = asyncio.all_tasks()
    run = Running(make_client(fake, heartbeat_interval=0.05))
    await fake.wait_connected()
    await fake.wait_heartbeats(1)
    await run.stop()
    # Nothing of the client's is left; only the fake server's side of the socket may still be closing.
    leftover = asyncio.all_tasks() - before
    assert [t for t in leftover if "aiohttp/web_protocol.py" not in repr(t)] == []  # server handlers
    assert not run.client.status.connected
    await fake.wait_until(
        lambda: fake.connected == 0 and not asyncio.all_tasks() - before, WAIT, "the server side to end"
    )
