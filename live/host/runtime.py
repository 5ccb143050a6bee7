"""Builds the endpoint's services from AstrBot's plugin context."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from astrbot.api import logger as host_logger

from ..audio.turn_model import EndOfTurnModel
from ..audio.vad import Endpointer, VadSettings
from ..audio.vad_batch import VadClassifiers
from ..config import LiveSettings
from ..log import logger
from ..protocol.astrbot_live import AstrBotLiveDialect
from ..protocol.neko import NekoDialect
from ..protocol.olv import OlvDialect
from ..services import Services
from .access import HostAccess
from .agent import WebChatAgent
from .chat_bridge import ChatBridge
from .realtime_host import AstrBotRealtimeHost
from .speech import HostSpeech
from .webchat_history import WebChatHistory


def endpointer_factory(classifiers: VadClassifiers) -> Callable[[LiveSettings], Endpointer]:
    """Endpointers whose classifiers come from `classifiers` (one batched Silero model when
    onnxruntime is installed). Called off the event loop: the first call loads the model."""

    def endpointer_for(settings: LiveSettings) -> Endpointer:
        return Endpointer(vad_settings(settings), classifiers.new())

    return endpointer_for


def vad_settings(settings: LiveSettings) -> VadSettings:
    return VadSettings(
        threshold=settings.vad_threshold,
        silence_ms=settings.vad_end_silence_ms,
        pause_marks_ms=settings.vad_pause_marks_ms,
        min_speech_ms=settings.vad_min_speech_ms,
        preroll_ms=settings.vad_preroll_ms,
        confirm_ms=settings.barge_in_min_speech_ms,
        long_speech_ms=settings.barge_in_meant_ms,
        max_utterance_ms=settings.limits.max_utterance_ms,
    )


def build_services(context: Any, settings: Callable[[], LiveSettings]) -> Services:
    logger.use(host_logger)  # from now on every module's lines go to this plugin's logger in AstrBot
    return Services(
        access=HostAccess,
        agent=WebChatAgent(context, WebChatHistory(context.message_history_manager)),
        speech=HostSpeech(context, settings),
        chat=ChatBridge,
        endpointer=endpointer_factory(VadClassifiers("auto")),
        realtime_host=AstrBotRealtimeHost(context),
        turn_model=EndOfTurnModel,  # loaded by the server's end-of-turn worker, the first time a session wants it
        dialects={
            "astrbot": lambda s, chat: AstrBotLiveDialect(s.limits.max_text_chars, chat_default=chat),
            "olv": lambda s, chat: OlvDialect(s.limits.max_text_chars, chat_default=chat),
            "neko": lambda s, chat: NekoDialect(s.limits.max_text_chars, chat_default=chat),
        },
    )
