"""The plugin loads in a real AstrBot, mounts its routes, and greets clients."""

import aiohttp

from tests.harness.astrbot_server import PLUGIN_NAME


async def test_hello_for_a_dashboard_user(connect):
    client = await connect()
    hello = await client.until("hello")
    data = hello["data"]
    assert data["protocol"] == "astrbot-live"
    assert data["username"] == "astrbot"
    assert data["input_audio"] == {"format": "pcm16", "sample_rate": 16000, "channels": 1}
    assert "turn_ids" in data["features"]
    state = await client.until("state")
    assert state["data"]["state"] == "listening"


async def test_no_credentials_gets_unauthorized_then_1008(connect):
    client = await connect(token=None)
    code, frames = await client.closed()
    assert code == 1008
    assert frames[0]["t"] == "error" and frames[0]["code"] == "UNAUTHORIZED"


async def test_live_page_is_served_ahead_of_the_spa(astrbot):
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{astrbot.base_url}/live", allow_redirects=False) as r:
            assert r.status == 307 and r.headers["Location"].endswith("/live/")
        async with http.get(f"{astrbot.base_url}/live/") as r:
            body = await r.text()
            assert r.status in (200, 503)
            assert "Live" in body


def test_reload_keeps_exactly_one_copy_of_each_route_and_shadows_nothing(astrbot):
    def describe(routes):
        return [(type(r).__name__, getattr(r, "path", ""), tuple(sorted(getattr(r, "methods", None) or ()))) for r in routes]

    def ours(route):
        return getattr(route, "_astrbot_live_mode", False)

    before = astrbot.dashboard_routes()
    host_before = describe([r for r in before if not ours(r)])
    ours_before = describe([r for r in before if ours(r)])
    assert ("WebSocketRoute", "/api/v1/live/ws", ()) in ours_before

    async def reload():
        return await astrbot.lifecycle.plugin_manager.reload(PLUGIN_NAME)

    for _ in range(2):
        astrbot.call(reload)
    after = astrbot.dashboard_routes()
    assert describe([r for r in after if not ours(r)]) == host_before  # no host route removed or reordered
    assert sorted(describe([r for r in after if ours(r)])) == sorted(ours_before)  # exactly one copy each
    # None of ours replaces a host path, except the WebChat button's copies of the host's index page
    # (docs/webchat.md): those are exactly the paths the host serves its index page at.
    from live.host.dashboard import dashboard_app
    from live.host.webchat_page import host_index_routes

    host_index_paths = {path for path, _handler in host_index_routes(dashboard_app())}
    assert "/" in host_index_paths and "/chat" in host_index_paths
    host_paths = {p for _, p, _ in host_before} | host_index_paths
    webchat_copies = {p for _, p, _ in ours_before if p in host_index_paths}
    assert webchat_copies == host_index_paths
    assert not host_paths & ({p for _, p, _ in ours_before} - webchat_copies)


async def test_plugin_reload_closes_live_sockets_with_1012(astrbot, connect):
    import asyncio

    client = await connect()
    await client.until("hello")

    async def reload():
        return await astrbot.lifecycle.plugin_manager.reload(PLUGIN_NAME)

    reloading = asyncio.get_running_loop().run_in_executor(None, astrbot.call, reload)
    code, _ = await client.closed()
    await reloading
    assert code == 1012
    again = await connect()
    assert (await again.until("hello"))["t"] == "hello"


async def test_live_command_in_webchat_links_to_this_conversation(connect, fake):
    client = await connect(ct="chat", conversation_id="chat-with-live-link")
    await client.until("hello")
    await client.send({"t": "send", "message_id": "cmd-1", "message": [{"type": "plain", "text": "/live"}]})
    text = ""
    while True:
        frame = await client.recv(15)
        if frame.get("ct") == "chat" and frame.get("type") == "plain":
            text += frame["data"]
        if frame.get("ct") == "chat" and frame.get("type") == "end":
            break
    assert "/live/?conversation_id=chat-with-live-link" in text
