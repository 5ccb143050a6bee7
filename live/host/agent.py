"""The engine's `Agent`, on AstrBot's WebChat queue.

A turn is injected into the WebChat queue with `action_type: "live"`, so the
full pipeline (persona, plugins, tools, knowledge bases, memory) answers. Our
`on_llm_request` hook then switches the event to plain streaming, so the
host's own `run_live_agent` never runs: the text deltas come back on the
back queue and the plugin's speech stage voices them.

A speculative run (started before the end of turn was certain) is the same
request, undecided until the engine commits or discards it: its WebChat
transcript records wait for the commit, a tool call waits in our
`on_using_llm_tool` hook (`gate_tool`), and a discarded run is stopped (the
host then never runs the tool) and its exchange removed from the
conversation history.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from astrbot.core.platform.sources.webchat.webchat_queue_mgr import webchat_queue_mgr
from astrbot.core.utils.active_event_registry import active_event_registry

from ..engine.ports import AGENT_ERROR, AgentDelta, AgentNotice, AgentOutput, Conversation
from ..log import logger
from . import llm_requests
from .llm_requests import TurnRequests

LIVE_ACTION = "live"
PLUGIN_ACTION = "live_mode_plugin"  # what the event carries once our hook has claimed it
INTERRUPTED_MARK = "…"
DRAIN_TIMEOUT_S = 15.0  # how long an abandoned request may take the host to end; after it, let go
SPECULATION_DECISION_TIMEOUT_S = 60.0  # a tool call waits this long for a commit; past it, the run is stopped
COMMAND_GUARD = "\u2060"  # WORD JOINER: invisible, not whitespace, so no command prefix matches
_NOTICE_TYPES = {"reasoning", "tool_call", "tool_call_result", "agent_stats", "tts_stats"}
# How AstrBot 4.29 words a failed agent (an LLM error mid-stream, a provider down): it arrives as
# ordinary reply text. A persona's custom error message cannot be told apart and is still voiced.
_HOST_ERROR_PREFIXES = ("LLM 响应错误:", "Error occurred during AI execution", "Error occurred while processing agent request:")


def pipeline_text(text: str) -> str:
    """The text as it enters the pipeline: a command only when typed with an explicit "/".

    WebChat treats every private message as addressed to the bot, so a spoken
    "stop, wait" or "new idea…" would run the `stop` or `new` command. An
    invisible word joiner in front keeps natural speech away from command
    handlers; the LLM reads the text unchanged.
    """
    if text.startswith("/") and text[1:].strip():
        return text
    # A bare "/" is no command: the host strips it to an empty message that never ends and
    # blocks the conversation's later turns, so it goes to the LLM as words too.
    return COMMAND_GUARD + text


def umo_of(conversation: Conversation) -> str:
    return f"webchat:FriendMessage:webchat!{conversation.username}!{conversation.conversation_id}"


class WebChatAgentRun:
    """One request in the host pipeline, read from its back queue."""

    def __init__(
        self, agent: WebChatAgent, conversation: Conversation, text: str, *, speculative: bool = False
    ) -> None:
        self._agent = agent
        self.conversation = conversation
        self.text = text
        self.message_id = uuid.uuid4().hex
        self.checkpoint_id = str(uuid.uuid4())
        self.umo = umo_of(conversation)
        self.stopped = False
        self.reply = ""
        self.bot_record_id: int | None = None
        self.requests = TurnRequests(self.message_id)  # the LLM requests the host makes for this run
        self._user_saved: asyncio.Task | None = None
        self._done = asyncio.Event()
        self._queue = webchat_queue_mgr.get_or_create_back_queue(self.message_id, conversation.conversation_id)
        self._drain: asyncio.Task | None = None
        # speculative: True once committed, False once discarded or stopped first; None: an ordinary run
        self._decided: asyncio.Future[bool] | None = asyncio.get_running_loop().create_future() if speculative else None

    @property
    def undecided(self) -> bool:
        return self._decided is not None and not self._decided.done()

    async def kept(self) -> bool:
        """Whether this run's exchange stays: at once for an ordinary run, else once it is committed or discarded."""
        return True if self._decided is None else await asyncio.shield(self._decided)

    def commit(self) -> None:
        """The turn is confirmed: the exchange is kept, tool calls may run, the transcript is written."""
        if self.undecided:
            assert self._decided is not None
            self._decided.set_result(True)
            self._save_user()

    def _decide_not_kept(self) -> None:
        if self.undecided:
            assert self._decided is not None
            self._decided.set_result(False)

    def _save_user(self) -> None:
        # The transcript record must not delay the turn; it is awaited before the answer's.
        if self._user_saved is None:
            saving = self._agent.history.save_user(self)
            self._user_saved = asyncio.create_task(saving, name=f"live-save-{self.message_id}")

    async def outputs(self) -> AsyncIterator[AgentOutput]:
        ended = False
        try:
            if self._decided is None:
                self._save_user()
            await webchat_queue_mgr.get_or_create_queue(self.conversation.conversation_id).put(
                (
                    self.conversation.username,
                    self.conversation.conversation_id,
                    {
                        "message_id": self.message_id,
                        "message": [{"type": "plain", "text": pipeline_text(self.text)}],
                        "action_type": LIVE_ACTION,
                        "llm_checkpoint_id": self.checkpoint_id,
                        "flags": {"enable_streaming": True},
                    },
                )
            )
            while True:
                item = await self._queue.get()
                output = self._translate(item)
                if output is _END:
                    break
                if output is not None:
                    yield output
            ended = True  # the host finished the request (history written)
            if await self.kept():
                assert self._user_saved is not None
                await self._user_saved
                await self._agent.history.save_bot(self, self.reply)
            self._close()
        finally:
            if ended:
                if not self._done.is_set():
                    self._close()  # cancelled while undecided or saving: nothing is left to drain
            elif not self._done.is_set() and self._drain is None:
                # Abandoned mid-stream (barge-in): drain until the host finishes the request.
                self._drain = asyncio.create_task(self._drain_until_end(), name=f"live-drain-{self.message_id}")

    def _translate(self, item: Any) -> AgentOutput | None | object:
        if not isinstance(item, dict):
            return None
        kind = item.get("type")
        if kind == "end":
            return _END
        if kind != "plain":
            return None
        data = item.get("data")
        text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
        chain_type = item.get("chain_type")
        if chain_type in _NOTICE_TYPES:
            return AgentNotice(str(chain_type), text)
        if chain_type == "break" or not text:
            return None
        if text.startswith(_HOST_ERROR_PREFIXES):
            return AgentNotice(AGENT_ERROR, text)
        # Streaming deltas, or a whole reply sent at once (commands, errors, non-LLM plugins).
        self.reply += text
        return AgentDelta(text)

    async def _drain_until_end(self) -> None:
        try:
            async with asyncio.timeout(DRAIN_TIMEOUT_S):
                while True:
                    item = await self._queue.get()
                    if isinstance(item, dict) and item.get("type") == "end":
                        break
        except TimeoutError:
            # The host does not always end a request (under quick barge-ins one can wait for ever
            # as a follow-up of an agent run we abandoned): without a bound this task, its back
            # queue and the run would live as long as the process.
            logger.warning("live: the host never ended request %s; letting it go", self.message_id)
            self._agent.abandon(self.message_id)
        finally:
            self._close()

    def _close(self) -> None:
        webchat_queue_mgr.remove_back_queue(self.message_id)
        self._agent.forget(self)
        self._done.set()

    def stop(self) -> None:
        self._decide_not_kept()  # a speculative run stopped before its commit is never kept
        if self.stopped:
            return
        self.stopped = True
        count = active_event_registry.request_agent_stop_all(self.umo)
        # After the agent's stop, so a stream closed under it is one the agent already let go of.
        self.requests.abandon()
        logger.debug("live barge-in: stop requested for %s (%d active)", self.message_id, count)

    async def closed(self) -> None:
        if self._drain is None and not self._done.is_set():
            self._drain = asyncio.create_task(self._drain_until_end(), name=f"live-drain-{self.message_id}")
        await self._done.wait()

    async def keep_heard(self, heard: str) -> None:
        """Cut this answer, in memory and in the WebChat transcript, to what was heard."""
        if self._user_saved is not None:
            await asyncio.gather(self._user_saved, return_exceptions=True)
        await self._agent.history.save_bot(self, heard, interrupted=True)
        manager = self._agent.conversations
        cid = await manager.get_curr_conversation_id(self.umo)
        record = await manager.get_conversation(self.umo, cid) if cid else None
        if record is None:
            return
        history = json.loads(record.history) if isinstance(record.history, str) else list(record.history or [])
        # A stopped host agent records its own exchange ("Stop output." / "Output stopped."): the
        # user never said it, so it goes, and the heard part takes its place.
        spoken = [i for i, m in enumerate(history) if m.get("role") in ("user", "assistant")][-2:]
        tail = [(history[i].get("role"), _plain_text(history[i])) for i in spoken]
        aborted = tail == [("user", _HOST_ABORT_PAIR[0]), ("assistant", _HOST_ABORT_PAIR[1])]
        if aborted:
            for i in reversed(spoken):
                del history[i]
        for index in range(len(history) - 1, -1, -1):
            message = history[index]
            if message.get("role") == "user":
                if not aborted:
                    return  # this answer never reached the history: nothing to cut
                if heard:  # right after the question, ahead of the host's checkpoint mark
                    history.insert(index + 1, {"role": "assistant", "content": heard + INTERRUPTED_MARK})
                break
            if message.get("role") == "assistant":
                if heard:
                    message["content"] = heard + INTERRUPTED_MARK
                    message.pop("tool_calls", None)
                else:
                    del history[index]
                break
        await manager.update_conversation(self.umo, cid, history=history)

    async def discard(self) -> None:
        """After `stop()` and `closed()` of a speculative run: remove its exchange from the conversation
        history (the WebChat transcript never got it). The host marks what it saved with our checkpoint id."""
        self.stop()
        if self._decided is None or self._decided.result():
            return  # an ordinary or committed run: `keep_heard` is for those
        manager = self._agent.conversations
        cid = await manager.get_curr_conversation_id(self.umo)
        record = await manager.get_conversation(self.umo, cid) if cid else None
        if record is None:
            return
        history = json.loads(record.history) if isinstance(record.history, str) else list(record.history or [])
        marks = [i for i, m in enumerate(history) if _checkpoint_id(m) == self.checkpoint_id]
        if not marks:
            return  # stopped before the host saved anything
        end = marks[-1]
        start = next(
            (i for i in range(end - 1, -1, -1)
             if history[i].get("role") == "user" and _plain_text(history[i]) != _HOST_ABORT_PAIR[0]),
            None,
        )  # fmt: skip
        if start is None:
            return
        del history[start : end + 1]
        await manager.update_conversation(self.umo, cid, history=history)

    async def aclose(self) -> None:
        """Abandon the request (plugin unload): stop it and stop waiting for it."""
        self.stop()
        if self._drain is not None and not self._drain.done():
            self._drain.cancel()
            await asyncio.gather(self._drain, return_exceptions=True)
        self._close()


_END = object()
_HOST_ABORT_PAIR = ("Stop output.", "Output stopped.")  # AstrBot 4.29's ToolLoopAgentRunner, on a stop


def _checkpoint_id(message: Any) -> str | None:
    """The id of a checkpoint mark the host saves after each exchange (`{"role": "_checkpoint", ...}`)."""
    if not isinstance(message, dict) or message.get("role") != "_checkpoint":
        return None
    content = message.get("content")
    return content.get("id") if isinstance(content, dict) else None


def _plain_text(message: Any) -> str:
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


NO_MODEL_REPLY = (
    "No chat model is configured yet, so I cannot answer. I heard you say: {text}. "
    "Add a chat model under Providers in the AstrBot dashboard, and I will answer for real."
)


class NoChatModelRun:
    """What a user hears when AstrBot has no chat model: the voice loop still works end to end."""

    def __init__(self, text: str) -> None:
        self._reply = NO_MODEL_REPLY.format(text=text.strip().rstrip(".?!"))

    async def outputs(self) -> AsyncIterator[AgentOutput]:
        yield AgentDelta(self._reply)

    def stop(self) -> None:
        pass

    async def closed(self) -> None:
        pass

    async def keep_heard(self, heard: str) -> None:
        pass

    def commit(self) -> None:
        pass

    async def discard(self) -> None:
        pass


class WebChatAgent:
    """Starts runs and knows which pipeline events are ours."""

    def __init__(self, context: Any, history: Any) -> None:
        self._context = context
        self.conversations = context.conversation_manager
        self.history = history
        self._runs: dict[str, WebChatAgentRun] = {}
        # Requests we stopped waiting for: should the host reach one later, it is stopped, not
        # answered by the host's own live path (bounded: a few ids per stuck request).
        self._abandoned: deque[str] = deque(maxlen=1024)
        llm_requests.install()

    def start(
        self, conversation: Conversation, text: str, *, speculative: bool = False
    ) -> WebChatAgentRun | NoChatModelRun:
        if not self._has_chat_model(conversation):
            return NoChatModelRun(text)
        run = WebChatAgentRun(self, conversation, text, speculative=speculative)
        self._runs[run.message_id] = run
        return run

    def _has_chat_model(self, conversation: Conversation) -> bool:
        try:
            return self._context.get_using_provider(umo_of(conversation)) is not None
        except Exception:  # a misconfigured provider: let the pipeline report it
            return True

    def forget(self, run: WebChatAgentRun) -> None:
        self._runs.pop(run.message_id, None)

    def abandon(self, message_id: str) -> None:
        self._abandoned.append(message_id)

    def _ours(self, event: Any) -> tuple[bool, WebChatAgentRun | None]:
        """Whether the pipeline event is one of our requests, and its run (None once let go)."""
        message_id = str(getattr(getattr(event, "message_obj", None), "message_id", ""))
        run = self._runs.get(message_id)
        if event.get_extra("action_type") != LIVE_ACTION or (run is None and message_id not in self._abandoned):
            return False, None
        return True, run

    def admit(self, event: Any) -> None:
        """`on_waiting_llm_request` hook, the pipeline's first step toward the LLM: a request whose
        run was stopped (its client left, or barged in) ends here, before the host prepares anything
        (the session lock, the request, the conversation title); a live one claims the pipeline task,
        so every LLM request the host makes for it from here on belongs to the run."""
        ours, run = self._ours(event)
        if not ours:
            return
        if run is None or run.stopped:
            event.stop_event()
            return
        run.requests.bind()

    def claim(self, event: Any) -> bool:
        """`on_llm_request` hook: route our events to plain streaming (our speech stage).

        Returns True when the event is ours. A run stopped before the agent
        started is stopped here, so it never calls the LLM.
        """
        ours, run = self._ours(event)
        if not ours:
            return False
        event.set_extra("action_type", PLUGIN_ACTION)
        event.set_extra("enable_streaming", True)
        if run is None or run.stopped:
            event.stop_event()
        else:
            run.requests.bind()
        return True

    async def gate_tool(self, event: Any) -> None:
        """`on_using_llm_tool` hook, awaited by the host right before it runs a tool: a speculative run's
        call waits for the commit. A discarded run is stopped (again: its runner may have registered
        after the first stop), and the host's tool executor then refuses to start the tool."""
        message_id = str(getattr(getattr(event, "message_obj", None), "message_id", ""))
        if event.get_extra("action_type") not in (LIVE_ACTION, PLUGIN_ACTION):
            return
        run = self._runs.get(message_id)
        if run is None:
            if message_id in self._abandoned:  # a request we stopped and let go of: it runs nothing more
                active_event_registry.request_agent_stop_all(event.unified_msg_origin)
            return
        if not run.undecided and not run.stopped:
            return
        kept = False
        if run.undecided:
            try:
                kept = await asyncio.wait_for(run.kept(), SPECULATION_DECISION_TIMEOUT_S)
            except TimeoutError:
                logger.warning("live: speculative request %s was never committed; stopping it", run.message_id)
            except asyncio.CancelledError:  # the host swallows a hook's exceptions: stop the runner first
                run.stop()
                active_event_registry.request_agent_stop_all(run.umo)
                raise
        if not kept:
            run.stop()
            active_event_registry.request_agent_stop_all(run.umo)

    async def aclose(self) -> None:
        await asyncio.gather(*(run.aclose() for run in list(self._runs.values())), return_exceptions=True)
        llm_requests.uninstall()
