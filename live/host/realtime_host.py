"""The realtime backend's `RealtimeHost` on AstrBot 4.29: persona, memory and function tools of a live conversation.

A realtime model answers the user itself, so AstrBot's pipeline never runs for its turns. What the
pipeline would give the model is read here the way `astr_main_agent.build_main_agent` reads it; each
exchange is stored the way a live WebChat turn is; tool calls run through the host's own
`FunctionToolExecutor` with a WebChat event of the conversation, as its agent runner does.
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
import uuid
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import jsonschema
from astrbot.core.agent.message import CheckpointData, CheckpointMessageSegment
from astrbot.core.agent.mcp_client import MCPTool
from astrbot.core.agent.run_context import ContextWrapper
from astrbot.core.astr_agent_context import AstrAgentContext
from astrbot.core.astr_agent_hooks import MAIN_AGENT_HOOKS
from astrbot.core.astr_agent_tool_exec import FunctionToolExecutor
from astrbot.core.astr_main_agent import _append_system_reminders
from astrbot.core.astr_main_agent_resources import (
    CHATUI_SPECIAL_DEFAULT_PERSONA_PROMPT,
    LIVE_MODE_SYSTEM_PROMPT,
    LLM_SAFETY_MODE_SYSTEM_PROMPT,
    TOOL_CALL_PROMPT,
)
from astrbot.core.provider.entites import ProviderRequest
from astrbot.core.star.star_handler import star_map
from astrbot.core.utils.async_generator import iterate_in_task
from astrbot.core.utils.session_lock import session_lock_manager
from mcp.types import CallToolResult, EmbeddedResource, TextContent, TextResourceContents

from ..engine.ports import Conversation
from ..log import logger
from ..realtime.events import HistoryItem, ToolSpec
from ..realtime.ports import RealtimeContext, ToolOutcome
from .agent import COMMAND_GUARD, INTERRUPTED_MARK, LIVE_ACTION, umo_of
from .webchat_history import PLATFORM_ID, WebChatHistory

NO_RESULT = "The tool has no return value, or has sent the result directly to the user."  # the runner's words
_REMINDER = "<system_reminder>"  # the host's per-request reminders (date, sender) inside a stored user message


@dataclass
class _Exchange:
    """What `WebChatHistory` needs to know of one remembered exchange (a cascaded run carries the same)."""

    conversation: Conversation
    text: str
    checkpoint_id: str
    bot_record_id: int | None = None


class AstrBotRealtimeHost:
    """`RealtimeHost` for live conversations (a username and a WebChat conversation id, as the cascaded backend)."""

    def __init__(self, context: Any, *, history_turns: int = 20, tool_timeout_s: float = 30.0) -> None:
        if history_turns < 0 or tool_timeout_s <= 0:
            raise ValueError("history_turns must be >= 0 and tool_timeout_s > 0")
        self._context = context
        self._history_turns = history_turns
        self._tool_timeout_s = tool_timeout_s
        self._transcript = WebChatHistory(context.message_history_manager)

    # ------------------------------------------------------------ context

    async def context(self, conversation: Conversation) -> RealtimeContext:
        umo = umo_of(conversation)
        record = await self._record(umo)
        persona, chatui_default = await self._persona(umo, record)
        tools = self._enabled_tools(umo, persona)
        event = await self._event(conversation)
        history = [HistoryItem(m["role"], m["content"]) for m in (persona or {}).get("_begin_dialogs_processed") or []]
        history += _recent(_messages(record), self._history_turns)
        return RealtimeContext(
            instructions=self._instructions(umo, event, persona, chatui_default, has_tools=bool(tools)),
            history=tuple(history),
            tools=tuple(_spec(tool) for tool in tools.values()),
        )

    def _instructions(
        self, umo: str, event: Any, persona: dict | None, chatui_default: bool, *, has_tools: bool
    ) -> str:
        """The system prompt `build_main_agent` writes for a live WebChat turn, less what a voice model
        cannot use (skills, the HTML preview, knowledge-base and web-search notes, computer use)."""
        config = self._context.get_config(umo=umo)
        safety = config.get("agent_runner", {}).get("config", {}).get("persona", {})
        parts = []
        if safety.get("safety_mode", True) and safety.get("safety_mode_strategy", "system_prompt") == "system_prompt":
            parts.append(LLM_SAFETY_MODE_SYSTEM_PROMPT.strip())
        if persona and persona.get("prompt"):
            parts.append(f"# Persona Instructions\n\n{persona['prompt'].strip()}")
        elif chatui_default:
            parts.append(CHATUI_SPECIAL_DEFAULT_PERSONA_PROMPT)
        if has_tools:
            parts.append(TOOL_CALL_PROMPT)
        parts.append(LIVE_MODE_SYSTEM_PROMPT)
        # The date and the sender, when the host is set to tell them; here once per session, not per turn.
        request, timezone = ProviderRequest(), self._context.get_config().get("timezone")
        _append_system_reminders(event, request, config.get("provider_settings", {}), timezone)
        parts += [part.text for part in request.extra_user_content_parts]
        return "\n\n".join(parts)

    async def _record(self, umo: str) -> Any:
        manager = self._context.conversation_manager
        cid = await manager.get_curr_conversation_id(umo)
        return await manager.get_conversation(umo, cid) if cid else None

    async def _persona(self, umo: str, record: Any) -> tuple[dict | None, bool]:
        """The persona the host would pick (session rule, the conversation's, the configured default), and
        whether WebChat's own default prompt stands in for the implicit system default."""
        _, persona, _, chatui_default = await self._context.persona_manager.resolve_selected_persona(
            umo=umo,
            conversation_persona_id=getattr(record, "persona_id", None),
            platform_name=PLATFORM_ID,
            provider_settings=self._context.get_config(umo=umo).get("provider_settings", {}),
        )
        return persona, chatui_default

    def _enabled_tools(self, umo: str, persona: dict | None) -> dict[str, Any]:
        """The host's function tools for this conversation by name: active ones, as the persona allows
        (`_ensure_persona_and_skills`) and the configured plugin set keeps (`_plugin_tool_fix`)."""
        manager = self._context.get_llm_tool_manager()
        if persona is None or persona.get("tools") is None:
            tools = [tool for tool in manager.get_full_tool_set().tools if tool.active]
        else:
            tools = [tool for name in persona["tools"] if (tool := manager.get_func(name)) is not None and tool.active]
        plugin_set = self._context.get_config(umo=umo).get("plugin_set", ["*"])
        if plugin_set != ["*"]:
            tools = [tool for tool in tools if _kept_by_plugin_set(tool, plugin_set)]
        return {tool.name: tool for tool in tools}

    async def _event(self, conversation: Conversation) -> Any:
        """A WebChat event of the conversation, made by the WebChat adapter as for a live turn, with the
        sender's role and plugin set as the pipeline's waking stage gives them."""
        adapter = self._context.get_platform_inst(PLATFORM_ID)
        if adapter is None:
            raise RuntimeError("AstrBot's WebChat platform is not loaded")
        payload = {"message_id": uuid.uuid4().hex, "message": [], "action_type": LIVE_ACTION}
        message = await adapter.convert_message((conversation.username, conversation.conversation_id, payload))
        event = adapter.create_event(message)
        config = self._context.get_config(umo=event.unified_msg_origin)
        if conversation.username in [str(admin) for admin in config.get("admins_id", [])]:
            event.role = "admin"
        plugin_set = config.get("plugin_set", ["*"])
        event.plugins_name = None if plugin_set == ["*"] else plugin_set
        return event

    # ------------------------------------------------------------ memory

    async def remember(
        self, conversation: Conversation, user_text: str, assistant_text: str, *, interrupted: bool = False
    ) -> None:
        """Append the exchange to the conversation's memory and its WebChat transcript, as one checkpointed
        turn. `interrupted`: the answer was cut off, marked as the cascaded backend marks a heard part."""
        user_text, assistant_text = user_text.strip(), assistant_text.strip()
        if not user_text and not assistant_text:
            return
        umo = umo_of(conversation)
        exchange = _Exchange(conversation, user_text, str(uuid.uuid4()))
        said = assistant_text + INTERRUPTED_MARK if interrupted and assistant_text else assistant_text
        messages = [{"role": r, "content": text} for r, text in (("user", user_text), ("assistant", said)) if text]
        messages.append(CheckpointMessageSegment(content=CheckpointData(id=exchange.checkpoint_id)).model_dump())
        manager = self._context.conversation_manager
        # The pipeline reads and writes a conversation's history under this lock for a whole turn.
        async with session_lock_manager.acquire_lock(umo):
            record = await self._record(umo)
            cid = record.cid if record is not None else await manager.new_conversation(umo, PLATFORM_ID)
            await manager.update_conversation(umo, cid, history=_messages(record) + messages)
            if user_text:
                await self._transcript.save_user(exchange)
            if assistant_text:
                await self._transcript.save_bot(exchange, assistant_text, interrupted=interrupted)

    # ------------------------------------------------------------ tools

    async def call_tool(self, conversation: Conversation, name: str, arguments: dict) -> ToolOutcome:
        """Run an enabled tool as the host's agent runner would; every failure is an `ok=False` outcome."""
        try:
            async with asyncio.timeout(self._tool_timeout_s) as budget:
                return await self._run_tool(conversation, name, arguments)
        except TimeoutError:
            if not budget.expired():
                return _failed(name, "timed out on its own")
            logger.warning("live realtime: tool %s ran past %.1f s; stopped", name, self._tool_timeout_s)
            return ToolOutcome(f"error: the tool {name} did not finish within {self._tool_timeout_s:g} s", ok=False)
        except Exception as exc:  # a tool is third-party code: whatever it raises goes back to the model as text
            logger.warning("live realtime: tool %s failed: %s", name, _first_line(str(exc)))
            return _failed(name, _first_line(str(exc)) or type(exc).__name__)

    async def _run_tool(self, conversation: Conversation, name: str, arguments: Any) -> ToolOutcome:
        if not isinstance(arguments, dict):
            return ToolOutcome(f"error: the arguments of {name} must be a JSON object", ok=False)
        umo = umo_of(conversation)
        persona, _ = await self._persona(umo, await self._record(umo))
        tools = self._enabled_tools(umo, persona)
        tool = tools.get(name)
        if tool is None:
            available = ", ".join(tools) or "none"
            return ToolOutcome(f"error: Tool {name} not found. Available tools are: {available}", ok=False)
        if problem := _argument_problem(tool, arguments):
            return ToolOutcome(f"error: bad arguments for {name}: {problem}", ok=False)
        if tool.handler and (tool.parameters or {}).get("properties"):
            arguments = {k: v for k, v in arguments.items() if k in tool.parameters["properties"]}  # as the runner
        event = await self._event(conversation)
        # The host's own per-call timeout outlasts ours, so ours is the one that speaks.
        run_context = ContextWrapper(
            context=AstrAgentContext(context=self._context, event=event),
            tool_call_timeout=math.ceil(self._tool_timeout_s) + 1,
        )
        await _hook(MAIN_AGENT_HOOKS.on_tool_start(run_context, tool, arguments))
        texts: list[str] = []
        final: CallToolResult | None = None
        executor = FunctionToolExecutor.execute(tool=tool, run_context=run_context, **arguments)
        async with aclosing(iterate_in_task(executor)) as results:
            async for result in results:
                if isinstance(result, CallToolResult):
                    final = result
                    texts += _texts(result)
                elif result is None:  # the tool answered the user itself (or returned nothing)
                    direct = event.get_result()
                    texts.append(direct.get_plain_text() if direct is not None and direct.chain else NO_RESULT)
        await _hook(MAIN_AGENT_HOOKS.on_tool_end(run_context, tool, arguments, final))
        if final is not None and final.isError:
            return ToolOutcome("\n\n".join(texts) or f"error: the tool {name} reported an error", ok=False)
        return ToolOutcome("\n\n".join(t for t in texts if t) or "The tool returned no content.")


# ---------------------------------------------------------------- helpers


def _messages(record: Any) -> list[dict]:
    raw = getattr(record, "history", None) or []
    history = json.loads(raw) if isinstance(raw, str) else list(raw)
    return [m for m in history if isinstance(m, dict)]


def _recent(messages: list[dict], turns: int) -> list[HistoryItem]:
    """The user and assistant words of the last `turns` turns (a turn starts with a user message)."""
    items = []
    for message in messages:
        role = message.get("role")
        if role in ("user", "assistant") and (text := _spoken(message.get("content"), role)):
            items.append(HistoryItem(role, text))
    if turns == 0:
        return []
    starts = [i for i, item in enumerate(items) if item.role == "user"]
    return items[starts[-turns]:] if len(starts) > turns else items


def _spoken(content: Any, role: str) -> str:
    """A stored message's words: its text parts, without the host's reminders, reasoning or attachments."""
    if isinstance(content, list):
        parts = [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        content = "\n".join(p for p in parts if isinstance(p, str) and not p.startswith(_REMINDER))
    if not isinstance(content, str):
        return ""
    return (content.removeprefix(COMMAND_GUARD) if role == "user" else content).strip()


def _spec(tool: Any) -> ToolSpec:
    parameters = tool.parameters if isinstance(tool.parameters, dict) and tool.parameters else None
    return ToolSpec(
        name=tool.name,
        description=tool.description or "",
        parameters=copy.deepcopy(parameters) if parameters else {"type": "object", "properties": {}},
    )


def _kept_by_plugin_set(tool: Any, plugin_set: list[str]) -> bool:
    """`astr_main_agent._plugin_tool_fix`: MCP tools, tools of no known plugin and reserved plugins stay."""
    if isinstance(tool, MCPTool) or not tool.handler_module_path:
        return True
    plugin = star_map.get(tool.handler_module_path)
    return plugin is None or plugin.name in plugin_set or plugin.reserved


def _argument_problem(tool: Any, arguments: dict) -> str:
    """What is wrong with `arguments` against the schema the model was given ("" when nothing is)."""
    schema = tool.parameters if isinstance(tool.parameters, dict) else None
    if not schema:
        return ""
    try:
        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(arguments))
    except jsonschema.exceptions.SchemaError:  # the tool's own schema is broken: the host does not check either
        return ""
    if error is None:
        return ""
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{where}: {error.message}" if where else error.message


def _texts(result: CallToolResult) -> list[str]:
    texts = []
    for item in result.content:
        if isinstance(item, TextContent):
            texts.append(item.text)
        elif isinstance(item, EmbeddedResource) and isinstance(item.resource, TextResourceContents):
            texts.append(item.resource.text)
        else:
            texts.append(f"(the tool returned {getattr(item, 'type', 'data')}, which a voice conversation cannot show)")
    return texts


async def _hook(call: Any) -> None:
    try:
        await call
    except Exception as exc:  # as the runner: a plugin's tool hook does not stop the call
        logger.error("live realtime: a tool hook failed: %s", exc)


def _failed(name: str, reason: str) -> ToolOutcome:
    return ToolOutcome(f"error: the tool {name} failed: {reason}", ok=False)


def _first_line(text: str) -> str:
    """The host wraps a tool's exception with its traceback; the model gets the message alone."""
    return text.split(". Traceback:", 1)[0].strip()
