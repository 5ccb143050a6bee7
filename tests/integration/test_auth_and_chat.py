"""Credentials, ownership and unified chat mode on /api/v1/live/ws."""

import aiohttp


async def create_key(astrbot, scopes):
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{astrbot.base_url}/api/v1/api-keys",
            json={"name": "live-test", "scopes": scopes},
            headers={"Authorization": f"Bearer {astrbot.jwt()}"},
        ) as r:
            body = await r.json()
            assert r.status == 200, body
            return body["data"]["api_key"], body["data"]["key_id"]


async def revoke_key(astrbot, key_id):
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{astrbot.base_url}/api/v1/api-keys/{key_id}/revoke",
            headers={"Authorization": f"Bearer {astrbot.jwt()}"},
        ) as r:
            assert r.status == 200


async def refused(client):
    code, frames = await client.closed()
    assert code == 1008
    return frames[0]["code"]


async def test_api_key_with_username_gets_hello(astrbot, connect):
    key, _ = await create_key(astrbot, ["chat"])
    client = await connect(token=None, api_key=key, username="alice")
    hello = await client.until("hello")
    assert hello["data"]["username"] == "alice"


async def test_api_key_in_headers(astrbot, connect):
    key, _ = await create_key(astrbot, ["chat"])
    for headers in ({"X-API-Key": key}, {"Authorization": f"Bearer {key}"}, {"Authorization": f"ApiKey {key}"}):
        client = await connect(token=None, headers=headers, username="bob")
        assert (await client.until("hello"))["data"]["username"] == "bob"


async def test_refusals(astrbot, connect):
    key, key_id = await create_key(astrbot, ["chat"])
    no_chat, _ = await create_key(astrbot, ["im"])
    assert await refused(await connect(token="not-a-jwt")) == "UNAUTHORIZED"
    assert await refused(await connect(token=astrbot.jwt(secret="wrong-secret-0123456789abcdef0123"))) == "UNAUTHORIZED"
    assert await refused(await connect(token=astrbot.jwt(expires_in=-60))) == "UNAUTHORIZED"
    assert await refused(await connect(token=None, api_key=no_chat, username="carol")) == "UNAUTHORIZED"
    assert await refused(await connect(token=None, api_key=key)) == "BAD_USER"
    await revoke_key(astrbot, key_id)
    assert await refused(await connect(token=None, api_key=key, username="carol")) == "UNAUTHORIZED"


async def test_another_users_conversation_is_forbidden(astrbot, connect):
    key, _ = await create_key(astrbot, ["chat"])
    owner = await connect(token=None, api_key=key, username="dave", conversation_id="daves-private-chat")
    assert (await owner.until("hello"))["data"]["conversation_id"] == "daves-private-chat"
    intruder = await connect(token=None, api_key=key, username="eve", conversation_id="daves-private-chat")
    assert await refused(intruder) == "FORBIDDEN"


async def test_chat_mode_forwards_the_hosts_chat_events(connect, fake):
    fake.script_reply("Chat mode works fine.")
    client = await connect(ct="chat")
    await client.until("hello")
    await client.send({"t": "send", "message_id": "m-1", "message": [{"type": "plain", "text": "hello in chat mode"}]})
    events = []
    while True:
        frame = await client.recv(15)
        if frame.get("ct") == "chat":
            events.append(frame)
            if frame.get("type") == "end" or frame.get("t") == "error":
                break
    types = [e.get("type") or e.get("t") for e in events]
    assert "plain" in types and types[-1] == "end", types
    text = "".join(e["data"] for e in events if e.get("type") == "plain" and e.get("streaming"))
    assert "Chat mode works fine." in text


async def test_chat_frames_on_a_live_socket_and_bind_ownership(astrbot, connect, fake):
    key, _ = await create_key(astrbot, ["chat"])
    owner = await connect(token=None, api_key=key, username="frank", conversation_id="franks-chat")
    await owner.until("hello")
    other = await connect(token=None, api_key=key, username="grace")
    await other.until("hello")
    await other.send({"ct": "chat", "t": "bind", "session_id": "franks-chat"})
    frame = await other.until("error")
    assert frame["ct"] == "chat" and frame["code"] == "FORBIDDEN"


async def test_ct_routes_each_frame_and_an_unknown_ct_is_refused(connect):
    client = await connect(ct="chat", conversation_id="ct-routing")
    await client.until("hello")
    await client.send({"ct": "live", "t": "ping", "data": "live frame"})
    assert (await client.until("pong"))["data"] == "live frame"
    await client.send({"ct": "both", "t": "ping", "data": "x"})
    error = await client.until("error")
    assert error["code"] == "INVALID_MESSAGE_FORMAT" and "ct" not in error  # a live error: no chat frame was read
    await client.send({"t": "bind", "session_id": "ct-routing"})  # no `ct` on a ct=chat socket: a chat frame
    while (frame := await client.recv(15)).get("type") != "session_bound":
        pass
    assert frame["ct"] == "chat" and frame["session_id"] == "ct-routing"
