"""The realtime backend's host side (`live/host/realtime_host.py`) against a booted AstrBot.

Persona, history and tools are read from the real host; exchanges are written back and read by the
WebChat history API and the next cascaded turn (the fake provider records its LLM requests); tools
are registered by a real plugin (`tests/harness/live_test_tools`) and run by the host's executor.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
import uuid

import pytest

from live.engine.ports import Conversation

# Nothing from live.host or astrbot is imported at module level: importing astrbot writes a default
# cmd_config.json, and the booted AstrBot must start from the harness's own (with the fake providers).

TOOLS_PLUGIN = "live_test_tools"
USER = "astrbot"  # the dashboard user `connect` speaks as


def on_server(astrbot, fn, timeout: float = 30):
    """Run `fn()` (a coroutine function) on AstrBot's loop, from the test's loop."""
    return asyncio.to_thread(astrbot.call, fn, timeout)


def host_context(astrbot):
    return astrbot.lifecycle.plugin_manager.context


def AstrBotRealtimeHost(context, **options):  # noqa: N802 - stands for the class, imported late
    from live.host.realtime_host import AstrBotRealtimeHost as Host

    return Host(context, **options)


def umo_of(conversation: Conversation) -> str:
    from live.host.agent import umo_of as umo

    return umo(conversation)


def new_conversation() -> Conversation:
    return Conversation(USER, str(uuid.uuid4()))


@pytest.fixture(scope="module")
def tools_plugin(astrbot):
    """The test tools plugin, installed into the booted AstrBot for this module and uninstalled after."""
    with astrbot.test_plugin(TOOLS_PLUGIN) as plugin:
        yield plugin


async def typed_turn(connect, fake, conversation: Conversation, text: str, reply: str) -> list[dict]:
    """One cascaded typed turn on the conversation; returns the LLM request's messages."""
    fake.script_reply(reply)
    client = await connect(conversation_id=conversation.conversation_id)
    await client.send({"t": "text_input", "text": text})
    user = await client.until("user_msg")
    await client.until("end", turn=user["turn"])
    await client.close()
    return fake.streams[-1].messages


def system_prompt(messages: list[dict]) -> str:
    return "\n".join(str(m.get("content")) for m in messages if m.get("role") == "system")


def said(messages: list[dict]) -> list[tuple[str, str]]:
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            texts = [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
            content = "".join(t for t in texts if not t.startswith("<system_reminder>"))  # the host's date note
        if m.get("role") in ("user", "assistant"):
            out.append((m["role"], str(content)))
    return out


def webchat_history(astrbot, conversation: Conversation) -> list[dict]:
    """The conversation as WebChat's own history API shows it, oldest first."""
    req = urllib.request.Request(
        f"{astrbot.base_url}/api/v1/chat/sessions/{conversation.conversation_id}?page_size=100",
        headers={"Authorization": f"Bearer {astrbot.jwt()}"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        body = json.loads(resp.read())
    assert body["status"] == "ok", body
    return body["data"]["history"]


def plain(row: dict) -> str:
    return "".join(p.get("text", "") for p in row["content"].get("message", []) if p.get("type") == "plain")


# ---------------------------------------------------------------- persona


async def test_the_conversations_persona_is_the_instructions(astrbot, connect, fake):
    context = host_context(astrbot)
    persona_id = f"captain-{uuid.uuid4().hex[:8]}"
    prompt = "You are Captain Pebble, a retired sea captain who loves tide tables."
    conversation = new_conversation()
    umo = umo_of(conversation)

    async def create():
        await context.persona_manager.create_persona(persona_id, prompt, begin_dialogs=["Ahoy?", "Ahoy, sailor!"])

    await on_server(astrbot, create)
    await typed_turn(connect, fake, conversation, "good morning", "Morning to you.")

    async def choose():
        cid = await context.conversation_manager.get_curr_conversation_id(umo)
        await context.conversation_manager.update_conversation(umo, cid, persona_id=persona_id)
        return await AstrBotRealtimeHost(context).context(conversation)

    got = await on_server(astrbot, choose)
    assert f"# Persona Instructions\n\n{prompt}" in got.instructions
    assert [(h.role, h.text) for h in got.history] == [
        ("user", "Ahoy?"), ("assistant", "Ahoy, sailor!"),  # the persona's opening dialog first
        ("user", "good morning"), ("assistant", "Morning to you."),
    ]  # fmt: skip
    # The host's next cascaded turn has the same character: every part of ours is in its system prompt.
    host_system = system_prompt(await typed_turn(connect, fake, conversation, "how are the tides", "High at noon."))
    for part in got.instructions.split("\n\n# Persona")[0], f"# Persona Instructions\n\n{prompt}":
        assert part in host_system
    assert "You are in a real-time conversation." in got.instructions
    assert "You are in a real-time conversation." in host_system

    await on_server(astrbot, lambda: context.persona_manager.delete_persona(persona_id))


async def test_without_a_persona_the_default_one_speaks(astrbot, connect, fake):
    from astrbot.core.astr_main_agent_resources import CHATUI_SPECIAL_DEFAULT_PERSONA_PROMPT

    context = host_context(astrbot)
    host = AstrBotRealtimeHost(context)
    conversation = new_conversation()  # never used: no host conversation yet
    got = await on_server(astrbot, lambda: host.context(conversation))
    assert CHATUI_SPECIAL_DEFAULT_PERSONA_PROMPT in got.instructions  # WebChat's own default
    assert got.history == ()

    persona_id = f"narrator-{uuid.uuid4().hex[:8]}"
    prompt = "You are the Narrator, who speaks of everything in the third person."
    runner = context.get_config()["agent_runner"]["config"].setdefault("persona", {})
    before = runner.get("persona_id")

    async def make_default():
        await context.persona_manager.create_persona(persona_id, prompt)
        runner["persona_id"] = persona_id
        return await host.context(conversation)

    async def restore():
        if before is None:
            runner.pop("persona_id", None)
        else:
            runner["persona_id"] = before
        await context.persona_manager.delete_persona(persona_id)

    try:
        got = await on_server(astrbot, make_default)
        assert f"# Persona Instructions\n\n{prompt}" in got.instructions
        assert CHATUI_SPECIAL_DEFAULT_PERSONA_PROMPT not in got.instructions
        host_system = system_prompt(await typed_turn(connect, fake, conversation, "who are you", "The Narrator."))
        assert f"# Persona Instructions\n\n{prompt}" in host_system
    finally:
        await on_server(astrbot, restore)


# ---------------------------------------------------------------- history


async def test_history_is_the_last_turns_words(astrbot, connect, fake):
    context = host_context(astrbot)
    conversation = new_conversation()
    await typed_turn(connect, fake, conversation, "my cat is called Miso", "Miso is a lovely name.")
    await typed_turn(connect, fake, conversation, "she is three", "Three is a fun age for a cat.")

    async def read():
        return await AstrBotRealtimeHost(context).context(conversation), await AstrBotRealtimeHost(
            context, history_turns=1
        ).context(conversation)

    full, last = await on_server(astrbot, read)
    assert [(h.role, h.text) for h in full.history] == [
        ("user", "my cat is called Miso"), ("assistant", "Miso is a lovely name."),
        ("user", "she is three"), ("assistant", "Three is a fun age for a cat."),
    ]  # fmt: skip
    assert [(h.role, h.text) for h in last.history] == [
        ("user", "she is three"), ("assistant", "Three is a fun age for a cat.")
    ]  # fmt: skip


async def test_history_leaves_out_tool_calls_reasoning_and_host_notes(astrbot):
    """A stored agent turn with a tool call, as the host writes one: only the spoken words are seeded."""
    context = host_context(astrbot)
    conversation = new_conversation()
    umo = umo_of(conversation)
    stored = [
        {"role": "system", "content": "an old system message"},
        {"role": "user", "content": [
            {"type": "text", "text": "\u2060will it rain in Oslo"},
            {"type": "text", "text": "<system_reminder>Current datetime: 2026-12-03 10:00 (UTC)</system_reminder>"},
        ]},
        {"role": "assistant", "content": None, "tool_calls": [{"type": "function", "id": "call_1", "function": {
            "name": "live_probe_forecast", "arguments": "{\"city\": \"Oslo\", \"days\": 1}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "Oslo: sunny for 1 days"},
        {"role": "assistant", "content": [{"type": "think", "think": "the tool says sunny"},
                                          {"type": "text", "text": "No rain, it will be sunny."}]},
        {"role": "_checkpoint", "content": {"id": "c1"}},
    ]  # fmt: skip

    async def go():
        await context.conversation_manager.new_conversation(umo, "webchat", content=stored)
        return await AstrBotRealtimeHost(context).context(conversation)

    got = await on_server(astrbot, go)
    assert [(h.role, h.text) for h in got.history] == [
        ("user", "will it rain in Oslo"), ("assistant", "No rain, it will be sunny.")
    ]  # fmt: skip


# ---------------------------------------------------------------- remember


async def test_a_remembered_exchange_is_in_webchat_and_the_next_cascaded_turn(astrbot, connect, fake):
    context = host_context(astrbot)
    host = AstrBotRealtimeHost(context)
    conversation = new_conversation()
    await typed_turn(connect, fake, conversation, "let us plan a picnic", "Sounds lovely.")

    async def remember():
        await host.remember(conversation, "bring lemonade", "Lemonade it is.")
        await host.remember(conversation, "and sandwiches", "Sandwiches with", interrupted=True)

    await on_server(astrbot, remember)
    rows = [
        (r["content"]["type"], plain(r), r["content"].get("interrupted", False))
        for r in webchat_history(astrbot, conversation)
    ]
    assert rows == [
        ("user", "let us plan a picnic", False), ("bot", "Sounds lovely.", False),
        ("user", "bring lemonade", False), ("bot", "Lemonade it is.", False),
        ("user", "and sandwiches", False), ("bot", "Sandwiches with", True),
    ]  # fmt: skip
    messages = await typed_turn(connect, fake, conversation, "what are we bringing", "Lemonade and sandwiches.")
    turns = [(role, text.lstrip("\u2060")) for role, text in said(messages) if role in ("user", "assistant")]
    assert turns[-7:-1] == [
        ("user", "let us plan a picnic"), ("assistant", "Sounds lovely."),
        ("user", "bring lemonade"), ("assistant", "Lemonade it is."),
        ("user", "and sandwiches"), ("assistant", "Sandwiches with…"),
    ]  # fmt: skip
    assert turns[-1][0] == "user" and turns[-1][1].startswith("what are we bringing")
    got = await on_server(astrbot, lambda: host.context(conversation))
    assert ("assistant", "Sandwiches with…") in [(h.role, h.text) for h in got.history]


async def test_remember_during_a_cascaded_turn_loses_neither(astrbot, connect, fake):
    """The cascaded turn rewrites the whole history at its end; a remembered exchange written meanwhile
    must wait for it (the host's session lock), not be overwritten by it."""
    context = host_context(astrbot)
    host = AstrBotRealtimeHost(context)
    conversation = new_conversation()
    await typed_turn(connect, fake, conversation, "first things first", "Agreed.")
    fake.script_reply("A slow and careful answer.", ttft=1.5)
    client = await connect(conversation_id=conversation.conversation_id)
    await client.send({"t": "text_input", "text": "take your time"})
    user = await client.until("user_msg")
    await asyncio.sleep(0.5)  # the cascaded turn now holds the conversation, waiting for its LLM
    assert fake.streams and fake.streams[-1].finished is None
    await on_server(astrbot, lambda: host.remember(conversation, "meanwhile by voice", "Heard you."))
    await client.until("end", turn=user["turn"])
    got = await on_server(astrbot, lambda: host.context(conversation))
    assert [(h.role, h.text) for h in got.history] == [
        ("user", "first things first"), ("assistant", "Agreed."),
        ("user", "take your time"), ("assistant", "A slow and careful answer."),
        ("user", "meanwhile by voice"), ("assistant", "Heard you."),
    ]  # fmt: skip


async def test_remember_of_a_new_conversation_and_of_words_alone(astrbot):
    context = host_context(astrbot)
    host = AstrBotRealtimeHost(context)
    conversation = new_conversation()

    async def go():
        await host.remember(conversation, "  ", "")  # nothing to keep
        await host.remember(conversation, "hello there", "")  # the answer was not heard at all
        return await host.context(conversation)

    got = await on_server(astrbot, go)
    assert [(h.role, h.text) for h in got.history] == [("user", "hello there")]


# ---------------------------------------------------------------- tools


async def test_an_enabled_tool_is_offered_and_runs_in_the_host(astrbot, tools_plugin):
    context = host_context(astrbot)
    host = AstrBotRealtimeHost(context)
    conversation = new_conversation()

    async def go():
        offered = await host.context(conversation)
        return offered, await host.call_tool(conversation, "live_probe_forecast", {"city": "Oslo", "days": 3})

    got, outcome = await on_server(astrbot, go)
    specs = {spec.name: spec for spec in got.tools}
    forecast = specs["live_probe_forecast"]
    assert forecast.description == "The weather forecast for a city."
    assert forecast.parameters == {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "the city to forecast"},
                       "days": {"type": "number", "description": "how many days ahead"}},
    }  # fmt: skip
    assert "When using tools:" in got.instructions  # the host's tool prompt comes with tools
    assert outcome.ok, outcome
    assert outcome.output == f"Oslo: sunny for 3 days, asked by {USER}"
    call = tools_plugin.calls[-1]
    # the conversation's own event, the sender an admin as the pipeline makes it (admins_id has "astrbot")
    assert call == {"tool": "forecast", "umo": umo_of(conversation), "role": "admin", "sender": USER,
                    "city": "Oslo", "days": 3}  # fmt: skip


async def test_deactivated_and_persona_excluded_tools_are_neither_offered_nor_run(astrbot, tools_plugin):
    context = host_context(astrbot)
    host = AstrBotRealtimeHost(context)
    conversation = new_conversation()

    async def deactivated():
        assert await context.deactivate_llm_tool_async("live_probe_hidden")
        try:
            return await host.context(conversation), await host.call_tool(conversation, "live_probe_hidden", {})
        finally:
            await context.activate_llm_tool_async("live_probe_hidden")

    got, outcome = await on_server(astrbot, deactivated)
    names = {spec.name for spec in got.tools}
    assert "live_probe_hidden" not in names and "live_probe_forecast" in names
    assert not outcome.ok and "live_probe_hidden not found" in outcome.output

    persona_id = f"forecaster-{uuid.uuid4().hex[:8]}"
    umo = umo_of(conversation)

    async def persona_limited():
        await context.persona_manager.create_persona(persona_id, "You forecast weather.", tools=["live_probe_forecast"])
        await host.remember(conversation, "hi", "Hello.")  # the conversation exists now: give it the persona
        await context.conversation_manager.update_conversation(umo, None, persona_id=persona_id)
        try:
            return await host.context(conversation), await host.call_tool(conversation, "live_probe_broken", {})
        finally:
            await context.persona_manager.delete_persona(persona_id)

    got, outcome = await on_server(astrbot, persona_limited)
    assert [spec.name for spec in got.tools] == ["live_probe_forecast"]
    assert not outcome.ok and "live_probe_broken not found" in outcome.output


async def test_tool_failures_are_outcomes_never_exceptions(astrbot, tools_plugin):
    context = host_context(astrbot)
    host = AstrBotRealtimeHost(context)
    impatient = AstrBotRealtimeHost(context, tool_timeout_s=0.5)
    conversation = new_conversation()
    cancelled_before = len(tools_plugin.cancelled)

    async def go():
        return {
            "unknown": await host.call_tool(conversation, "no_such_tool", {}),
            "raises": await host.call_tool(conversation, "live_probe_broken", {}),
            "bad type": await host.call_tool(conversation, "live_probe_forecast", {"city": 5, "days": 1}),
            "not an object": await host.call_tool(conversation, "live_probe_forecast", ["Oslo"]),  # type: ignore
            "missing": await host.call_tool(conversation, "live_probe_forecast", {"city": "Oslo"}),
            "too slow": await impatient.call_tool(conversation, "live_probe_slow", {"seconds": 5}),
            "direct": await host.call_tool(conversation, "live_probe_direct", {}),
        }

    got = await on_server(astrbot, go)
    assert not got["unknown"].ok and got["unknown"].output.startswith("error: Tool no_such_tool not found.")
    assert "live_probe_forecast" in got["unknown"].output  # the model is told what it can call
    assert not got["raises"].ok
    assert got["raises"].output == "error: the tool live_probe_broken failed: the probe tool broke on purpose"
    assert not got["bad type"].ok
    assert got["bad type"].output.startswith("error: bad arguments for live_probe_forecast: city:")
    assert not got["not an object"].ok and "must be a JSON object" in got["not an object"].output
    assert not got["missing"].ok and "days" in got["missing"].output
    assert not got["too slow"].ok
    assert got["too slow"].output == "error: the tool live_probe_slow did not finish within 0.5 s"
    assert tools_plugin.cancelled[cancelled_before:] == ["slow"]  # the timeout stopped the tool itself
    assert got["direct"].ok and got["direct"].output == "Sent straight to the user."


async def test_a_tool_call_is_cancellable(astrbot, tools_plugin):
    context = host_context(astrbot)
    host = AstrBotRealtimeHost(context)
    conversation = new_conversation()
    before = len(tools_plugin.cancelled)

    async def go():
        call = asyncio.create_task(host.call_tool(conversation, "live_probe_slow", {"seconds": 30}))
        while not any(c["tool"] == "slow" and c["seconds"] == 30 for c in tools_plugin.calls):
            await asyncio.sleep(0.01)
        call.cancel()
        try:
            await call
        except asyncio.CancelledError:
            return "cancelled"
        return "finished"

    assert await on_server(astrbot, go) == "cancelled"
    assert tools_plugin.cancelled[before:] == ["slow"]
