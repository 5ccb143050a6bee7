"""Live turns in the WebChat transcript, so a conversation reads the same in both places.

The dashboard's WebChat shows `platform_message_history`; the LLM's memory is
the conversation history. The pipeline writes the latter; this writes the former.
"""

from __future__ import annotations

from typing import Any

from ..engine.ports import Conversation
from ..log import logger

PLATFORM_ID = "webchat"


def _plain(text: str) -> list[dict]:
    return [{"type": "plain", "text": text}] if text else []


class WebChatHistory:
    def __init__(self, platform_history_mgr: Any) -> None:
        self._mgr = platform_history_mgr

    async def save_user(self, run: Any) -> None:
        await self._insert(
            run.conversation,
            {"type": "user", "message": _plain(run.text), "live": True},
            sender=run.conversation.username,
            checkpoint=run.checkpoint_id,
        )

    async def save_bot(self, run: Any, text: str, *, interrupted: bool = False) -> None:
        """Save the run's answer; an interrupted run's saved answer is replaced by the heard part."""
        content: dict = {"type": "bot", "message": _plain(text), "live": True}
        if interrupted:
            content["interrupted"] = True
        if run.bot_record_id is not None:
            await self._update(run.bot_record_id, content)
            return
        record = await self._insert(run.conversation, content, sender="bot", checkpoint=run.checkpoint_id)
        run.bot_record_id = getattr(record, "id", None)

    async def _insert(self, conversation: Conversation, content: dict, *, sender: str, checkpoint: str | None):
        try:
            return await self._mgr.insert(
                platform_id=PLATFORM_ID,
                user_id=conversation.conversation_id,
                content=content,
                sender_id=sender,
                sender_name=sender,
                llm_checkpoint_id=checkpoint,
            )
        except Exception as exc:  # the transcript is a convenience; the turn goes on
            logger.warning("could not save a live message to the WebChat history: %s", exc)
            return None

    async def _update(self, record_id: int, content: dict) -> None:
        try:
            await self._mgr.update(record_id, content=content)
        except Exception as exc:
            logger.warning("could not update a live message in the WebChat history: %s", exc)
