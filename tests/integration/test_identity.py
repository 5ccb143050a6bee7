"""Who a connection speaks as, and which conversation it reaches, whatever the spelling.

Issue 17 found another user's conversation id accepted in other spellings (upper case,
`webchat!alice!<id>`), ids and usernames with `../`, NUL or U+202E, a 10 KB username that broke
the host's workspace folder, and an admin's name in capitals. The host uses names and ids
verbatim: `webchat!<user>!<id>` is the event's session, its last `!` part names the WebChat
session whose title the host writes, and both end up in a folder name under `data/workspaces/`.
So one spelling is accepted and the ownership check runs on that exact string.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid

import aiohttp
import jwt
import pytest
import websockets

from tests.harness.live_client import LiveClient, error_code

ALICE, BOB = "identity-alice", "identity-bob"
SECRET = "4321"


async def make_key(astrbot, scopes: list[str]) -> str:
    async with aiohttp.ClientSession() as http, http.post(
        f"{astrbot.base_url}/api/v1/api-keys",
        json={"name": f"identity-{'-'.join(scopes)}", "scopes": scopes},
        headers={"Authorization": f"Bearer {astrbot.jwt()}"},
    ) as r:
        body = await r.json()
        assert r.status == 200, body
        return body["data"]["api_key"]


@pytest.fixture(scope="module")
async def chat_key(astrbot) -> str:
    return await make_key(astrbot, ["chat"])


async def text_turn(client: LiveClient, text: str) -> dict:
    await client.send({"t": "text_input", "text": text})
    user = await client.until("user_msg", timeout=20)
    return await client.until("end", turn=user["turn"], timeout=30)


@pytest.fixture(scope="module")
async def alices(astrbot, chat_key, providers) -> dict[str, str]:
    """Alice's two WebChat conversations, named the way the host names them (uuid4):
    `told` holds a secret in its history; `untitled` is open but has no turn and so no title yet."""
    told, untitled = str(uuid.uuid4()), str(uuid.uuid4())
    providers.script_reply("Noted.")
    client = await LiveClient.open(astrbot.ws_url(api_key=chat_key, username=ALICE, conversation_id=told))
    assert (await client.until("hello"))["data"]["conversation_id"] == told
    await text_turn(client, f"my locker code is {SECRET}")
    await client.close()
    client = await LiveClient.open(astrbot.ws_url(api_key=chat_key, username=ALICE, conversation_id=untitled))
    await client.until("hello")
    await client.close()
    return {"told": told, "untitled": untitled}


def platform_session(astrbot, session_id: str):
    from astrbot.core import db_helper

    async def get():
        return await db_helper.get_platform_session_by_id(session_id)

    return astrbot.call(get)


def transcript_senders(astrbot, conversation_id: str) -> set[str]:
    async def get():
        records = await astrbot.lifecycle.plugin_manager.context.message_history_manager.get("webchat", conversation_id)
        return {r.sender_id for r in records}

    return astrbot.call(get)


async def verdict(url: str, headers: dict | None = None, dialect: str = "astrbot") -> tuple[str, object]:
    """("accepted", hello) or ("refused", (close code, error codes of the frames before it)).
    Only the astrbot dialect says hello; for the others, acceptance is "not closed within 3 s"."""
    async with websockets.connect(url, additional_headers=headers, open_timeout=10, max_size=None) as ws:
        codes = []
        try:
            while True:
                try:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), 10 if dialect == "astrbot" else 3))
                except TimeoutError:
                    return "accepted", None
                if frame.get("t") == "hello":
                    return "accepted", frame
                codes.append(error_code(dialect, frame))
        except websockets.ConnectionClosed as exc:
            return "refused", (exc.rcvd.code if exc.rcvd else None, codes)


# ---------------------------------------------------------------- conversation ids


def spellings(cid: str) -> dict[str, str]:
    """Alice's id as a tester wrote it for Bob, each refused as not an id at all."""
    fullwidth = cid.translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789abcdef"})
    return {
        "upper_case": cid.upper(),
        "host_session_form": f"webchat!{ALICE}!{cid}",
        "bobs_session_form": f"webchat!{BOB}!{cid}",
        "unified_origin": f"webchat:FriendMessage:webchat!{ALICE}!{cid}",
        "leading_space": f" {cid}",
        "trailing_newline": f"{cid}\n",
        "nul": f"{cid}\x00",
        "zero_width_space": f"{cid[:8]}\u200b{cid[8:]}",
        "fullwidth": fullwidth,
        "braces": "{" + cid + "}",
        "urn": f"urn:uuid:{cid}",
        "path_to_it": f"../{cid}",
        "path_traversal": "../../etc/passwd",
        "underscore_joined": cid.replace("-", "_"),
        "too_long": cid + "-" + "a" * (128 - len(cid)),
    }


SPELLING_NAMES = list(spellings(str(uuid.uuid4())))


@pytest.mark.parametrize("which", ["told", "untitled"])
@pytest.mark.parametrize("spelling", SPELLING_NAMES)
@pytest.mark.parametrize("param", ["conversation_id", "session_id"])
async def test_another_spelling_of_alices_id_is_refused_as_invalid(astrbot, chat_key, alices, fake, which, spelling, param):
    """Refused as INVALID_MESSAGE_FORMAT (not FORBIDDEN: that means "someone else's"), before any
    host session is created under that spelling, and with no turn reaching the LLM."""
    wrong = spellings(alices[which])[spelling]
    outcome, detail = await verdict(astrbot.ws_url(api_key=chat_key, username=BOB, **{param: wrong}))
    if outcome == "accepted":  # show what such a connection reaches, then fail
        pytest.fail(f"accepted as {detail['data']['conversation_id']!r}")
    assert detail == (1008, ["INVALID_MESSAGE_FORMAT"]), detail
    assert platform_session(astrbot, wrong) is None
    assert fake.chats == []


async def test_the_exact_id_is_forbidden_and_every_entry_point_agrees(astrbot, chat_key, alices, fake):
    """Bob asking for Alice's id as it is: FORBIDDEN on a socket, in a room, in chat mode."""
    cid = alices["told"]
    for query in ({}, {"room": "identity-room"}, {"protocol": "olv"}, {"protocol": "neko"}, {"ct": "chat"}):
        url = astrbot.ws_url(api_key=chat_key, username=BOB, conversation_id=cid, **query)
        outcome, detail = await verdict(url, dialect=query.get("protocol", "astrbot"))
        assert outcome == "refused" and detail == (1008, ["FORBIDDEN"]), (query, detail)
    assert platform_session(astrbot, cid).creator == ALICE
    assert fake.chats == []


async def test_chat_mode_refuses_every_spelling_and_stays_usable(astrbot, chat_key, alices, fake):
    """`bind` and `send` name a session id per frame: the same rule, one coded error each."""
    bob = await LiveClient.open(astrbot.ws_url(api_key=chat_key, username=BOB, ct="chat"))
    await bob.until("hello")
    try:
        cid = alices["told"]
        cases = [(cid, "FORBIDDEN")] + [(wrong, "INVALID_MESSAGE_FORMAT") for wrong in spellings(cid).values()]
        for wrong, code in cases:
            for frame in (
                {"t": "bind", "session_id": wrong},
                {"t": "send", "session_id": wrong, "message_id": f"m-{uuid.uuid4().hex[:8]}",
                 "message": [{"type": "plain", "text": "what is my locker code?"}]},
            ):  # fmt: skip
                await bob.send(frame)
                error = await bob.until("error", timeout=10)
                assert (error.get("ct"), error.get("code")) == ("chat", code), (frame, error)
            assert platform_session(astrbot, wrong) is None or wrong == cid
        await bob.send({"ct": "live", "t": "ping", "data": "still here"})
        assert (await bob.until("pong"))["data"] == "still here"
    finally:
        await bob.close()
    assert fake.chats == []


async def test_alices_history_title_and_transcript_stay_hers(astrbot, chat_key, alices, fake):
    """What Bob reaches with ids he may use: his own conversations, never a word of Alice's.

    A hyphen-less copy of Alice's id is a valid id, and a different string: the host gives it its
    own session, so it is Bob's new, empty conversation. His turn there must not see her secret,
    and the title the host writes after it must land on his session, not on Alice's untitled one.
    """
    twins = {which: alices[which].replace("-", "") for which in alices}
    for which, twin in twins.items():
        bob = await LiveClient.open(astrbot.ws_url(api_key=chat_key, username=BOB, conversation_id=twin))
        hello = await bob.until("hello")
        assert hello["data"]["conversation_id"] == twin
        end = await text_turn(bob, "what is my locker code?")
        await bob.close()
        assert SECRET not in end["data"]["text"]
        assert platform_session(astrbot, twin).creator == BOB
    # The host titles the session named by the last `!` part of `webchat!<user>!<id>`: this spelling,
    # once accepted, had Bob's turn title Alice's conversation. Refused now, so no turn happens.
    sneaky = await LiveClient.open(
        astrbot.ws_url(api_key=chat_key, username=BOB, conversation_id=f"webchat!{ALICE}!{alices['untitled']}")
    )
    if (await sneaky.recv())["t"] == "hello":
        await text_turn(sneaky, "tell me about volcanoes")
        for _ in range(200):  # give the host's background title request its chance to show the leak
            if platform_session(astrbot, alices["untitled"]).display_name:
                break
            await asyncio.sleep(0.05)
    await sneaky.close()
    for _ in range(200):  # the host writes a title in the background after a conversation's first turn
        if platform_session(astrbot, twins["untitled"]).display_name:
            break
        await asyncio.sleep(0.05)
    assert platform_session(astrbot, twins["untitled"]).display_name  # the title went to Bob's session
    seen_by_llm = json.dumps([c.messages for c in fake.chats])
    assert SECRET not in seen_by_llm
    assert platform_session(astrbot, alices["untitled"]).display_name is None  # no title written by Bob
    assert platform_session(astrbot, alices["untitled"]).creator == ALICE
    assert platform_session(astrbot, alices["told"]).creator == ALICE
    assert transcript_senders(astrbot, alices["told"]) == {ALICE, "bot"}
    assert transcript_senders(astrbot, alices["untitled"]) == set()


async def test_alice_still_reaches_her_conversation_and_its_history(astrbot, chat_key, alices, fake):
    """The strict format does not lock the owner out: her id, as the host wrote it, works."""
    alice = await LiveClient.open(astrbot.ws_url(api_key=chat_key, username=ALICE, conversation_id=alices["told"]))
    assert (await alice.until("hello"))["data"]["conversation_id"] == alices["told"]
    await text_turn(alice, "what is my locker code?")
    await alice.close()
    assert SECRET in json.dumps(fake.streams[-1].messages)  # her memory is there, for her


# ---------------------------------------------------------------- usernames


BAD_USERNAMES = {
    "path_traversal": "../../etc/passwd",
    "dot_dot": "..",
    "slash": "a/b",
    "backslash": "a\\b",
    "nul": "evil\x00name",
    "right_to_left_override": "\u202egnp.exe",
    "zero_width_space": "mika\u200b",
    "ten_kilobytes": "x" * 10240,
    "one_over_the_limit": "x" * 65,
    "inner_space": "a b",
    "tab_inside": "a\tb",
    "session_separator": "webchat!alice",
    "origin_separator": "a:b",
    "leading_underscore": "_mika",
    "empty": "",
    "only_spaces": "   ",
}
GOOD_USERNAMES = {
    "sixty_four": "x" * 64,
    "chinese": "小明",
    "email_like": "mika@example.com",
    "mixed": "user_1-2.3",
    "admin_in_capitals": "ASTRBOT",
}


@pytest.mark.parametrize("name", list(BAD_USERNAMES))
async def test_a_username_outside_the_format_is_refused_with_bad_user(astrbot, chat_key, fake, name):
    username = BAD_USERNAMES[name]
    outcome, detail = await verdict(astrbot.ws_url(api_key=chat_key, username=username))
    assert outcome == "refused" and detail == (1008, ["BAD_USER"]), detail
    async with aiohttp.ClientSession() as http, http.post(
        f"{astrbot.base_url}/api/v1/live/rooms/identity-room/events",
        params={"username": username}, headers={"X-API-Key": chat_key},
        json={"kind": "danmaku", "user": {"name": "A", "id": "1"}, "text": "hi"},
    ) as r:  # fmt: skip
        assert (r.status, (await r.json())["code"]) == (403, "BAD_USER")
    assert fake.chats == []


@pytest.mark.parametrize("name", list(GOOD_USERNAMES))
async def test_a_username_inside_the_format_is_accepted_as_given(astrbot, chat_key, name):
    username = GOOD_USERNAMES[name]
    outcome, hello = await verdict(astrbot.ws_url(api_key=chat_key, username=username))
    assert outcome == "accepted", hello
    assert hello["data"]["username"] == username


@pytest.mark.parametrize("username", ["x" * 64, "名" * 64])
async def test_the_longest_name_with_the_longest_id_gets_a_whole_turn(astrbot, chat_key, fake, username):
    """The 10 KB name failed in the host ("File name too long" under data/workspaces/): the limits
    are chosen so that the longest of both still gets an answer."""
    cid = (hashlib.sha256(username.encode()).hexdigest() * 2)[:128]  # 128 characters, one per user
    fake.script_reply("All good.")
    client = await LiveClient.open(astrbot.ws_url(api_key=chat_key, username=username, conversation_id=cid))
    try:
        assert (await client.until("hello"))["data"]["conversation_id"] == cid
        end = await text_turn(client, "hello")
        assert end["data"]["text"] == "All good."
        assert not [f for f in client.frames if f.get("t") == "error"], client.frames
    finally:
        await client.close()


# ---------------------------------------------------------------- admin names


async def test_admin_names_match_the_host_exactly(astrbot, chat_key):
    """The host strips the name, then compares it with `admins_id` case-sensitively: " astrbot"
    is the admin (refused to a chat key), "ASTRBOT" is somebody else."""
    for name in ("astrbot", " astrbot", "astrbot "):
        outcome, detail = await verdict(astrbot.ws_url(api_key=chat_key, username=name))
        assert outcome == "refused" and detail == (1008, ["BAD_USER"]), (name, detail)
    admin_key = await make_key(astrbot, ["chat", "chat:admin"])
    outcome, hello = await verdict(astrbot.ws_url(api_key=admin_key, username="astrbot"))
    assert outcome == "accepted" and hello["data"]["username"] == "astrbot"


async def test_the_host_treats_an_admins_name_in_capitals_as_an_ordinary_user(astrbot, chat_key, fake):
    """Proof from the host itself: an admin-only command typed as "ASTRBOT" gets the host's
    permission refusal naming that user; typed by the admin, it runs."""
    capitals = await LiveClient.open(astrbot.ws_url(api_key=chat_key, username="ASTRBOT"))
    admin = await LiveClient.open(astrbot.ws_url(token=astrbot.jwt("astrbot")))
    try:
        await capitals.until("hello")
        await admin.until("hello")
        refused = await text_turn(capitals, "/provider")
        assert "ASTRBOT" in refused["data"]["text"] and "权限" in refused["data"]["text"], refused
        allowed = await text_turn(admin, "/provider")
        assert "权限" not in allowed["data"]["text"] and "fake_chat" in allowed["data"]["text"], allowed
    finally:
        await capitals.close()
        await admin.close()


# ---------------------------------------------------------------- dashboard JWTs


def signed(astrbot, claims: dict) -> str:
    return jwt.encode(claims, astrbot.jwt_secret, algorithm="HS256")


@pytest.mark.parametrize(
    "exp, accepted",
    [
        pytest.param(None, False, id="no_exp"),
        pytest.param("in_an_hour_as_string", False, id="string_exp"),
        pytest.param(True, False, id="boolean_exp"),
        pytest.param([1], False, id="list_exp"),
        pytest.param("in_an_hour", True, id="integer_exp"),
        pytest.param("in_an_hour_as_float", True, id="float_exp"),
        pytest.param("an_hour_ago", False, id="expired"),
    ],
)
async def test_a_dashboard_token_needs_a_numeric_unexpired_exp(astrbot, exp, accepted):
    now = int(time.time())
    values = {
        "in_an_hour": now + 3600, "in_an_hour_as_float": now + 3600.5, "an_hour_ago": now - 3600,
        "in_an_hour_as_string": str(now + 3600),
    }  # fmt: skip
    claims = {"username": "identity-jwt"}
    if exp is not None:
        claims["exp"] = values.get(exp, exp) if isinstance(exp, str) else exp
    outcome, detail = await verdict(astrbot.ws_url(token=signed(astrbot, claims)))
    if accepted:
        assert outcome == "accepted", detail
    else:
        assert outcome == "refused" and detail == (1008, ["UNAUTHORIZED"]), detail


# ---------------------------------------------------------------- which credential counts


async def test_the_cookie_counts_only_when_nothing_explicit_is_sent(astrbot, chat_key):
    cookie = {"Cookie": f"astrbot_dashboard_jwt={astrbot.jwt('identity-cookie')}"}
    outcome, hello = await verdict(astrbot.ws_url(), cookie)
    assert outcome == "accepted" and hello["data"]["username"] == "identity-cookie"
    # An explicit credential wins over the ambient cookie, even a bad one: the cookie never rescues it.
    outcome, detail = await verdict(astrbot.ws_url(api_key="abk_bogus", username="identity-cookie"), cookie)
    assert outcome == "refused" and detail == (1008, ["UNAUTHORIZED"]), detail
    bad_cookie = {"Cookie": "astrbot_dashboard_jwt=eyJnot.a.token"}
    outcome, hello = await verdict(astrbot.ws_url(api_key=chat_key, username="identity-key"), bad_cookie)
    assert outcome == "accepted" and hello["data"]["username"] == "identity-key"


async def test_a_username_given_twice_differently_is_refused(astrbot, chat_key):
    url = astrbot.ws_url(api_key=chat_key, username="identity-one") + "&username=identity-two"
    outcome, detail = await verdict(url)
    assert outcome == "refused" and detail == (1008, ["BAD_USER"]), detail
    url = astrbot.ws_url(api_key=chat_key, username="identity-one") + "&username=identity-one"
    outcome, hello = await verdict(url)
    assert outcome == "accepted" and hello["data"]["username"] == "identity-one"


async def test_conflicting_credentials_say_which_were_sent(astrbot, chat_key):
    outcome, detail = await verdict(
        astrbot.ws_url(token=astrbot.jwt("identity-both"), api_key=chat_key, username="identity-both")
    )
    assert outcome == "refused" and detail == (1008, ["UNAUTHORIZED"]), detail
    async with websockets.connect(
        astrbot.ws_url(token=astrbot.jwt("identity-both"), api_key=chat_key, username="identity-both")
    ) as ws:
        frame = json.loads(await ws.recv())
    assert "conflicting credentials" in frame["data"] and "?token=" in frame["data"] and "?api_key=" in frame["data"]
