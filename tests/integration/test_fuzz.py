"""Hostile input, property-based: random and mutated frames in every dialect never hurt the server.

Hypothesis draws batches of frames for one dialect: valid frames (from docs/live-api.md and the
golden tables of tests/unit/test_protocol_*.py), those frames mutated (a key dropped, a value of the
wrong type, a new key, the type renamed, the JSON text cut or spliced), raw text and binary, deeply
nested JSON, frames over the frame limit, and unicode edge cases (NUL, RTL and bidi marks,
combining marks, joiners, astral characters, BOM, non-characters). The property, checked after
every batch on the same connection:

- the server never closes the connection and the AstrBot thread is alive;
- every error frame carries a code;
- the connection still answers the dialect's ping.

Frames are paced under `max_frames_per_second` so this tests decoding, not the flood guard. Over the
whole run the memory of this process (AstrBot runs here, in a thread) must stay flat after a warm-up;
Hypothesis's own bookkeeping grows here too (a few MB per 100 batches; replaying the same frames
shows the server flat), so the bound has room for it. After the run the connection's tasks end and
the server holds no session, agent run or WebChat back queue more than before. Figures are printed
(`-s`); `LIVE_FUZZ_BATCHES=200` fuzzes longer.

Inside JSON, strings may hold lone UTF-16 surrogates (`"\\ud800"`, which the transport carries as an
escape) and numbers may be `NaN`, `Infinity` or `1e999`: both once broke the server (the targeted
tests at the bottom pin those fixes). Raw text frames hold only what UTF-8 can carry.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import os
import time
from dataclasses import dataclass, field, replace

import psutil
import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness.live_client import (
    DIALECTS,
    LightClient,
    error_code,
    is_pong,
    ping_frame,
)

FRAME_LIMIT = 64 * 1024  # the fuzz connections' max frame size: "huge" frames stay cheap to make
TEXT_LIMIT = 300
RATE = 150  # frames per second we send, under the 200/s limit (the pings count too)
BATCH = 40
EXAMPLES = int(os.environ.get("LIVE_FUZZ_BATCHES", "44"))  # 44 x 40 frames x 3 dialects = 5,280 frames per run
WARMUP_EXAMPLES = 8
RSS_GROWTH_LIMIT_MB = 48.0

# ---------------------------------------------------------------- strategies

EDGE_CHARS = (
    "\x00\x01\x08\x1b\x1f\x7f\u0085\u00a0\u00ad"  # NUL, controls, NEL, NBSP, soft hyphen
    "\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"  # zero-width, bidi
    "\u0301\u0308\u0336\u20dd\u0e49"  # combining marks
    "\u2028\u2029\u2060\ufeff\ufffd\ufffe\uffff"  # separators, WORD JOINER, BOM, non-characters
    "\U0001f600\U0001f468\U0001f3fd\U00010348\U0001d11e\U0010ffff"  # astral
    "\u4e2d\u6587\u0627\u0644\u05d0\u0416/\\\"'<>&%{}[]:,"
)
wire_chars = st.one_of(st.sampled_from(EDGE_CHARS), st.characters(exclude_categories=("Cs",)))  # UTF-8 can carry these
json_chars = st.one_of(wire_chars, st.characters(categories=("Cs",)))  # lone surrogates, as JSON escapes


def texts(max_size: int = 24) -> st.SearchStrategy[str]:
    """Strings inside JSON (serialized with escapes, so even lone surrogates travel)."""
    return st.text(alphabet=json_chars, max_size=max_size)


def wire_texts(max_size: int) -> st.SearchStrategy[str]:
    """Raw text frames and splices into JSON text: what a WebSocket text frame can carry."""
    return st.text(alphabet=wire_chars, max_size=max_size)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),  # json.dumps writes NaN / Infinity, as a hostile client may
    texts(),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(texts(6), children, max_size=4)),
    max_leaves=12,
)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


stamps = st.one_of(st.sampled_from(["s1", "s2", ""]), texts(6), st.integers(1, 10))
pcm = st.binary(max_size=960)
float_samples = st.lists(st.floats(-1.5, 1.5, allow_nan=False), max_size=256)
int_samples = st.one_of(
    st.lists(st.integers(-32768, 32767), max_size=200),
    st.integers(0, 3).map(lambda n: [0, 120, -120, 40] * (40 * n)),  # 160-sample (16 kHz) frames
)
short_text = texts(40).filter(lambda t: t.strip())
turn_ids = st.one_of(st.none(), texts(12))
played = st.one_of(st.none(), st.integers(0, 10**12), st.floats(0, 1e12, allow_nan=False))

ASTRBOT_VALID = st.one_of(
    st.builds(lambda s: {"t": "start_speaking", "stamp": s}, stamps),
    st.builds(lambda d: {"t": "speaking_part", "data": b64(d)}, pcm),
    st.builds(lambda s: {"t": "end_speaking", "stamp": s}, stamps),
    st.builds(lambda t, p: {"t": "interrupt", "turn": t, "played_ms": p}, turn_ids, played),
    st.builds(lambda t, p: {"t": "playback_report", "turn": t, "played_ms": p}, turn_ids, played),
    st.sampled_from([{"t": "mute"}, {"t": "unmute"}]),
    st.builds(lambda d: {"t": "ping", "data": d}, json_values),
    st.builds(
        lambda f, r: {"t": "configure", "output_audio": {"format": f, "sample_rate": r}},
        st.sampled_from(["wav", "pcm16", "mp3", ""]),
        st.one_of(st.sampled_from([0, 8000, 16000, 24000, 48000, 7999, 48001]), st.integers(-5, 10**6)),
    ),
    st.builds(lambda e: {"t": "set_audio", "enabled": e}, json_values),
    st.builds(
        lambda k, n, t, v: {"t": "viewer_event", "kind": k, "user": {"name": n, "id": "1"}, "text": t, "value": v},
        st.sampled_from(["danmaku", "superchat", "gift", "guard", "entry", "spam"]), texts(8), texts(30), st.integers(-1, 100),
    ),
    # unified chat mode frames, none of which is a well-formed `send` (that would be a host chat turn)
    st.builds(lambda s: {"ct": "chat", "t": "bind", "session_id": s}, st.one_of(st.sampled_from(["fuzz-chat"]), json_values)),
    st.builds(lambda m: {"ct": "chat", "t": "interrupt", "message_id": m}, json_values),
    st.builds(lambda m: {"ct": "chat", "t": "send", "message": m}, st.one_of(st.none(), st.integers(), st.just([]))),
    st.builds(lambda t: {"ct": "chat", "t": t}, json_values),
    # turns (bounded: these reach the fake LLM)
    st.builds(lambda t: {"t": "text_input", "text": t}, short_text),
    st.builds(lambda t: {"t": "text_input", "message": [{"type": "plain", "text": t}, {"type": "image"}]}, short_text),
)

OLV_VALID = st.one_of(
    st.builds(lambda a: {"type": "mic-audio-data", "audio": a}, float_samples),
    st.just({"type": "mic-audio-end"}),
    st.builds(lambda a: {"type": "raw-audio-data", "audio": a}, float_samples),
    st.builds(lambda t: {"type": "interrupt-signal", "text": t}, st.one_of(st.none(), texts(30), json_values)),
    st.sampled_from(
        [{"type": t} for t in (
            "heartbeat", "frontend-playback-complete", "audio-play-start", "ai-speak-signal", "create-new-history",
            "fetch-configs", "fetch-backgrounds", "request-init-config", "switch-config", "fetch-history-list",
            "request-group-info", "add-client-to-group", "remove-client-from-group",
        )]
    ),
    st.builds(lambda u: {"type": "fetch-and-set-history", "history_uid": u}, json_values),
    st.builds(lambda u: {"type": "delete-history", "history_uid": u}, st.one_of(json_values, st.just("fuzz"))),
    st.builds(lambda t: {"type": "text-input", "text": t, "images": []}, short_text),
)

NEKO_VALID = st.one_of(
    st.builds(lambda k: {"action": "start_session", "input_type": k},
              st.one_of(st.sampled_from(["audio", "screen", "camera", "text", "avatar_drop_image", "user_image"]), json_values)),
    st.builds(lambda d, r: {"action": "stream_data", "input_type": "audio", "data": d, "sample_rate": r},
              int_samples, st.one_of(st.none(), st.sampled_from([16000, 48000, 8000, 96000, 44100, 7999]), json_values)),
    st.builds(lambda k, d: {"action": "stream_data", "input_type": k, "data": d},
              st.sampled_from(["screen", "camera", "avatar_drop_image", "user_image", "smell"]), json_values),
    st.sampled_from([{"action": "end_session"}, {"action": "pause_session"}]),
    st.sampled_from([{"action": a} for a in (
        "voice_input_control", "greeting_check", "capture_bridge_status", "voice_play_start", "voice_play_end",
        "screenshot_response", "avatar_interaction",
    )]),
    st.builds(lambda t: {"action": "stream_data", "input_type": "text", "data": t}, short_text),
)  # fmt: skip

VALID = {"astrbot": ASTRBOT_VALID, "olv": OLV_VALID, "neko": NEKO_VALID}
TYPE_KEY = {"astrbot": "t", "olv": "type", "neko": "action"}


@st.composite
def mutated(draw, dialect: str) -> str:
    """A valid frame with one to three mutations, as JSON text (or a cut/spliced JSON text)."""
    frame: dict = dict(draw(VALID[dialect]))
    for _ in range(draw(st.integers(1, 3))):
        keys = list(frame)
        op = draw(st.sampled_from(["drop", "retype", "add", "rename_type", "wrap"]))
        if op == "drop" and keys:
            frame.pop(draw(st.sampled_from(keys)))
        elif op == "retype" and keys:
            frame[draw(st.sampled_from(keys))] = draw(json_values)
        elif op == "add":
            frame[draw(texts(8))] = draw(json_values)
        elif op == "rename_type":
            frame[TYPE_KEY[dialect]] = draw(st.one_of(texts(16), json_values))
        elif op == "wrap" and keys:
            key = draw(st.sampled_from(keys))
            frame[key] = draw(st.sampled_from([[frame[key]], {"value": frame[key]}, str(frame[key])]))
    raw = json.dumps(frame)
    cut = draw(st.sampled_from(["none", "none", "truncate", "splice"]))
    if cut == "truncate" and raw:
        raw = raw[: draw(st.integers(0, len(raw) - 1))]
    elif cut == "splice":
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(wire_texts(6)) + raw[at:]
    return raw


@st.composite
def nested(draw, dialect: str) -> str:
    depth = draw(st.one_of(st.integers(10, 200), st.integers(900, 1100), st.integers(2000, 20000)))
    inner = draw(st.sampled_from(["[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth]))
    where = draw(st.sampled_from(["bare", "field"]))
    if where == "bare":
        return inner
    return {"astrbot": '{"t":"ping","data":%s}', "olv": '{"type":"fetch-and-set-history","history_uid":%s}',
            "neko": '{"action":"stream_data","input_type":"screen","data":%s}'}[dialect] % inner  # fmt: skip


@st.composite
def huge(draw) -> str | bytes:
    size = FRAME_LIMIT + draw(st.integers(1, 32 * 1024))
    if draw(st.booleans()):
        return bytes(size - size % 2)
    filler = draw(st.sampled_from(["a", "\u4e2d", "\U0001f600", "\x00"]))
    return '{"t":"text_input","text":"' + filler * (size // len(filler.encode())) + '"}'


NON_FINITE = ("NaN", "Infinity", "-Infinity", "1e999")
NUMBER_FIELD = {
    "astrbot": '{{"t":"interrupt","played_ms":{}}}',
    "olv": '{{"type":"mic-audio-data","audio":[0.1,{}]}}',
    "neko": '{{"action":"stream_data","input_type":"audio","data":[1,2],"sample_rate":{}}}',
}


# The wrong-typed values an outside tester found getting through (issue #17), as JSON text (two of them
# only exist as text: 1e-400 parses as 0.0, and 4,300 digits is the most Python's parser reads), and
# the fields that must refuse each one. `skip`: values that field accepts (an absent `turn`, rate 0).
WRONG_VALUES = ("null", "{}", "0", "-1", "true", "[]", '""', "0.5", "16000.5", "1e-400", "1" + "0" * 4299)
WRONG_TYPED_FIELDS: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "astrbot": [
        ('{"t":"start_speaking","stamp":%s}', ()),
        ('{"t":"end_speaking","stamp":%s}', ()),
        ('{"t":"speaking_part","data":%s}', ()),
        ('{"t":"interrupt","turn":%s}', ("null", '""')),
        ('{"t":"playback_report","turn":%s,"played_ms":5}', ("null", '""')),
        ('{"t":"configure","output_audio":{"format":"wav","sample_rate":%s}}', ("null", "0")),
        ('{"ct":%s,"t":"mute"}', ("null",)),
        ('{"t":"text_input","message":[{"type":"plain","text":%s}]}', ()),
        ('{"t":"text_input","text":%s}', ()),
        ('{"t":%s}', ()),
    ],
    "olv": [
        ('{"type":"text-input","text":%s}', ()),
        ('{"type":"mic-audio-data","audio":%s}', ("[]",)),
        ('{"ct":%s,"type":"frontend-playback-complete"}', ("null",)),
        ('{"type":%s}', ()),
    ],
    "neko": [
        ('{"action":"stream_data","input_type":"text","data":%s}', ()),
        ('{"action":"stream_data","input_type":"audio","data":%s}', ("[]",)),
        ('{"ct":%s,"action":"voice_play_end"}', ("null",)),
        ('{"action":%s}', ()),
    ],
}


def refused_frames(dialect: str) -> list[str]:
    return [tpl % v for tpl, skip in WRONG_TYPED_FIELDS[dialect] for v in WRONG_VALUES if v not in skip]


def frames(dialect: str) -> st.SearchStrategy[str | bytes]:
    valid_json = VALID[dialect].map(json.dumps)
    return st.one_of(
        valid_json,
        valid_json,
        st.sampled_from(refused_frames(dialect)),  # issue #17's wrong types, in the fields that must refuse them
        mutated(dialect),
        mutated(dialect),
        mutated(dialect),
        wire_texts(200),  # raw text, usually not JSON
        st.sampled_from(NON_FINITE).map(NUMBER_FIELD[dialect].format),  # JSON's forbidden numbers, in a number field
        st.binary(max_size=2048),  # binary: audio for astrbot (odd sizes refused), refused by the others
        nested(dialect),
        huge(),
        st.builds(json.dumps, json_values),  # JSON of the wrong shape (arrays, strings, numbers)
    )


# Typed turns reach the fake LLM through the host pipeline, whose own rate limit (30 messages a
# minute per conversation, then it stalls) would hold later turns back: a run starts at most this many.
TURN_BUDGET = 24
_TURN_MARKERS = {"astrbot": ("text_input",), "olv": ("text-input",), "neko": ('"text"',)}
HARMLESS = {"astrbot": {"t": "mute"}, "olv": {"type": "frontend-playback-complete"}, "neko": {"action": "voice_play_end"}}


def sendable(dialect: str, frame: str | bytes, run: FuzzRun) -> str | bytes:
    """Keep our own probe and turns past the budget out of a batch (a harmless frame instead)."""
    if isinstance(frame, bytes):
        return frame
    if dialect == "neko" and '"ping"' in frame:  # N.E.K.O pongs carry no payload: only our probe may ping
        return json.dumps(HARMLESS[dialect])
    if any(marker in frame for marker in _TURN_MARKERS[dialect]):
        if run.turns >= TURN_BUDGET and len(frame) <= FRAME_LIMIT:  # frames over the limit are never decoded
            return json.dumps(HARMLESS[dialect])
        run.turns += 1
    return frame


# ---------------------------------------------------------------- the fuzz run


@dataclass
class FuzzRun:
    dialect: str
    sent: int = 0
    batches: int = 0
    turns: int = 0  # frames that may start a typed turn
    errors: dict[str, int] = field(default_factory=dict)
    rss_warm_mb: float | None = None
    rss_end_mb: float | None = None


RUNS: dict[str, FuzzRun] = {}


def rss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


def retained(astrbot) -> dict[str, int]:
    """What the server holds per connection and per turn: all of it must go when the socket does."""
    from astrbot.core.platform.sources.webchat.webchat_queue_mgr import (
        webchat_queue_mgr,
    )

    async def sizes():
        plugin = astrbot.plugin()
        return {
            "connections": len(plugin.server.connections),
            "agent_runs": len(plugin.services.agent._runs),
            "back_queues": len(webchat_queue_mgr.back_queues),
        }

    return astrbot.call(sizes)


def server_tasks(astrbot, prefix: str = "live-") -> list[str]:
    async def names():
        return sorted(t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith(prefix))

    return astrbot.call(names)


@pytest.fixture
def fuzz_limits(astrbot, tune):
    """Small frame and text limits for the fuzz connections; the frame rate limit stays at its default."""
    limits = astrbot.plugin().settings.limits
    return tune(
        limits=replace(limits, max_frame_bytes=FRAME_LIMIT, max_text_chars=TEXT_LIMIT, max_utterance_ms=5000)
    ).limits


async def send_paced(client: LightClient, batch: list[str | bytes]) -> None:
    start = time.monotonic()
    for i, frame in enumerate(batch):
        due = start + i / RATE
        if (wait := due - time.monotonic()) > 0:
            await asyncio.sleep(wait)
        await client.send_raw(frame)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_fuzzed_frames_never_hurt_the_server(astrbot, fake, fuzz_limits, dialect):
    assert fuzz_limits.max_frames_per_second >= 200, "pace assumes the default frame rate limit"
    fake.default_ttft, fake.default_interval = 0.01, 0.002
    run = RUNS[dialect] = FuzzRun(dialect)
    tasks_before = server_tasks(astrbot)
    held_before = retained(astrbot)
    loop = asyncio.new_event_loop()  # the client's own loop, alive across Hypothesis examples
    url = astrbot.ws_url(token=astrbot.jwt(f"fuzz-{dialect}"), protocol=dialect, conversation_id=f"fuzz-{dialect}")
    client = loop.run_until_complete(LightClient.open(url, dialect))
    started = time.monotonic()
    try:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
        )
        @given(batch=st.lists(frames(dialect), min_size=BATCH, max_size=BATCH))
        def property_(batch):
            batch = [sendable(dialect, f, run) for f in batch]
            uncoded = client.errors.get("", 0)
            try:
                loop.run_until_complete(send_paced(client, batch))
                alive = loop.run_until_complete(client.alive())
            except websockets.ConnectionClosed as exc:
                raise AssertionError(f"the server closed the connection: {exc}") from None
            run.sent += len(batch)
            run.batches += 1
            assert alive, "the connection stopped answering its ping"
            assert astrbot._thread.is_alive(), "the AstrBot thread died"
            assert client.errors.get("", 0) == uncoded, "an error frame without a code"
            if run.batches == WARMUP_EXAMPLES:
                run.rss_warm_mb = rss_mb()

        property_()
    finally:
        loop.run_until_complete(client.close())
        loop.close()
    run.errors = dict(client.errors)
    fuzzing_s = time.monotonic() - started
    run.rss_end_mb = rss_mb()
    for _ in range(250):  # the connection's tasks end with it (an abandoned host request within 15 s)
        if set(server_tasks(astrbot)) <= set(tasks_before):
            break
        time.sleep(0.1)
    leftover = sorted(set(server_tasks(astrbot)) - set(tasks_before))
    held_after = retained(astrbot)
    cleanup_s = time.monotonic() - started - fuzzing_s
    growth = (run.rss_end_mb or 0) - (run.rss_warm_mb or 0)
    print(
        f"\nfuzz {dialect}: {run.sent} frames in {run.batches} batches, {client.received} frames back, "
        f"{len(fake.chats)} LLM calls; errors by code {run.errors}; RSS after warm-up {run.rss_warm_mb:.1f} MB, "
        f"at the end {run.rss_end_mb:.1f} MB ({growth:+.1f} MB); live tasks before {len(tasks_before)}, "
        f"leftover {leftover}; {fuzzing_s:.1f} s fuzzing, {cleanup_s:.1f} s until the tasks ended; "
        f"held before {held_before}, after {held_after}"
    )
    assert run.sent >= EXAMPLES * BATCH, "Hypothesis ran fewer batches than planned"
    assert not leftover, leftover
    assert all(held_after[k] <= held_before[k] for k in held_before), (held_before, held_after)
    assert growth < RSS_GROWTH_LIMIT_MB, f"RSS grew {growth:.1f} MB after warm-up"


# ---------------------------------------------------------------- targeted hostile frames


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_frames_over_the_default_limit_get_a_code_and_the_connection_lives(astrbot, dialect):
    limit = astrbot.plugin().settings.limits.max_frame_bytes
    client = await LightClient.open(astrbot.ws_url(token=astrbot.jwt("fuzz-huge"), protocol=dialect), dialect)
    try:
        await client.send_raw(bytes(limit + 2))
        await client.send_raw('{"t":"text_input","text":"' + "a" * limit + '"}')
        assert await client.alive()
        assert client.errors == {"FRAME_TOO_LARGE": 2}, client.errors
    finally:
        await client.close()


async def test_invalid_utf8_in_a_text_frame_is_refused_by_the_transport_only(astrbot):
    """RFC 6455 makes the server fail such a connection (Hypercorn drops it); nothing else is affected."""
    from bench.loadgen import (
        ws_client_frame,  # a raw masked frame: the client library would not send this
    )

    bystander = await LightClient.open(astrbot.ws_url(token=astrbot.jwt("fuzz-bystander")), "astrbot")
    async with websockets.connect(astrbot.ws_url(token=astrbot.jwt("fuzz-utf8"))) as ws:
        ws.transport.write(ws_client_frame(b'{"t":"text_input","text":"\xff\xfe\xc3"}', opcode=0x1))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is None or closed.value.rcvd.code == 1007, closed.value
    assert await bystander.alive()
    await bystander.close()


# ---------------------------------------------------------------- bugs this fuzzer found, pinned

SURROGATE_ECHO = {  # a lone surrogate that comes back in the answer (a pong, a history reply, the LLM's echo)
    "astrbot": '{"t":"ping","data":"\\ud800"}',
    "olv": '{"type":"delete-history","history_uid":"\\udfff"}',
    "neko": '{"action":"stream_data","input_type":"text","data":"hi \\ud83d"}',
}


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_lone_surrogates_get_a_code_and_the_connection_lives(astrbot, fake, dialect):
    fake.default_ttft = 0.01
    client = await LightClient.open(astrbot.ws_url(token=astrbot.jwt("fuzz-surrogate"), protocol=dialect), dialect)
    try:
        await client.send_raw(SURROGATE_ECHO[dialect])
        assert await client.alive(timeout=8), "the connection went silent"
        assert client.errors.get("INVALID_MESSAGE_FORMAT") == 1, client.errors
    finally:
        await client.close()


@pytest.mark.parametrize(
    "frame",
    [
        '{"t":"interrupt","played_ms":Infinity}',
        '{"t":"playback_report","played_ms":NaN}',
        '{"t":"configure","output_audio":{"format":"wav","sample_rate":1e999}}',
    ],
)
async def test_non_finite_numbers_get_a_code_and_the_connection_lives(astrbot, frame):
    client = await LightClient.open(astrbot.ws_url(token=astrbot.jwt("fuzz-nan")), "astrbot")
    try:
        await client.send_raw(frame)
        assert await client.alive(timeout=8)
        assert client.errors == {"INVALID_MESSAGE_FORMAT": 1}, client.errors
    finally:
        await client.close()


@pytest.mark.parametrize(
    "dialect, frame, code",
    [
        ("olv", '{"type":"mic-audio-data","audio":[1' + "0" * 400 + "]}", "INVALID_AUDIO"),  # beyond any float
        ("neko", '{"action":"start_session","input_type":[1]}', "INVALID_MESSAGE_FORMAT"),  # unhashable
        ("neko", '{"action":"stream_data","input_type":{"a":1},"data":1}', "INVALID_MESSAGE_FORMAT"),
    ],
)
async def test_frames_that_used_to_kill_a_dialect_connection(astrbot, dialect, frame, code):
    """Found by this fuzzer; fixed in live/protocol/olv.py and neko.py."""
    client = await LightClient.open(astrbot.ws_url(token=astrbot.jwt("fuzz-fixed"), protocol=dialect), dialect)
    try:
        await client.send_raw(frame)
        assert await client.alive()
        assert client.errors == {code: 1}, client.errors
    finally:
        await client.close()


async def test_chat_mode_binds_cannot_grow_server_tasks_without_bound(astrbot, connect):
    client = await connect(conversation_id="fuzz-binder")
    await client.until("hello")
    before = len(server_tasks(astrbot, "chat_ws_sub_"))
    for i in range(120):
        await client.send({"ct": "chat", "t": "bind", "session_id": f"fuzz-bind-{i}"})
        if i % 40 == 39:
            await asyncio.sleep(0.3)  # stay under the frame rate limit
    await client.send({"t": "ping", "data": "after-binds"})
    await client.until("pong")
    grown = len(server_tasks(astrbot, "chat_ws_sub_")) - before
    assert grown <= 16, f"{grown} subscription tasks for one socket"


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_every_wrong_typed_value_of_issue_17_is_refused_with_a_code(astrbot, fake, dialect):
    """Each frame of `refused_frames` gets exactly one coded error, starts no LLM call, and the
    connection lives: the values used to pass unrefused (or, in `text_input`, became the words "None")."""
    client = await LightClient.open(astrbot.ws_url(token=astrbot.jwt("fuzz-wrong-types"), protocol=dialect), dialect)
    calls = len(fake.chats)
    sent = refused_frames(dialect)
    try:
        await send_paced(client, sent)
        assert await client.alive()
        assert "" not in client.errors and sum(client.errors.values()) == len(sent), client.errors
        assert len(fake.chats) == calls, "a refused frame reached the LLM"
    finally:
        await client.close()


def test_error_code_reader_knows_every_dialect():
    """The fuzzer's 'every error has a code' check reads each dialect's error frame correctly."""
    assert error_code("astrbot", {"t": "error", "code": "X", "data": "m"}) == "X"
    assert error_code("astrbot", {"t": "error", "data": "m"}) == ""
    assert error_code("olv", {"type": "error", "message": "m", "code": "Y"}) == "Y"
    assert error_code("olv", {"type": "error", "message": "m"}) == ""
    status = json.dumps({"code": "Z", "details": {"message": "m"}})
    assert error_code("neko", {"type": "status", "message": status}) == "Z"
    assert error_code("neko", {"type": "status", "message": "not json"}) == ""
    assert error_code("neko", {"type": "pong"}) is None
    assert is_pong("olv", {"type": "history-deleted", "history_uid": "p"}, "p")
    assert ping_frame("neko") == {"action": "ping"}
