"""Live Mode for AstrBot: wiring only. Everything else lives in `live/`."""

from __future__ import annotations

from pathlib import Path

from astrbot.api import AstrBotConfig, logger
from astrbot.api.event import AstrMessageEvent, filter
from astrbot.api.star import Context, Star
from starlette.routing import WebSocketRoute

from .live import PROTOCOL_VERSION
from .live.config import LiveSettings
from .live.errors import CloseCode
from .live.host.access import dashboard_username
from .live.host.dashboard import RouteMount
from .live.host.offline_providers import register_offline_providers
from .live.host.runtime import build_services
from .live.host.webchat_page import webchat_index_routes
from .live.rooms.feeds import PlatformFeeds
from .live.transport.pages import PAGE_PREFIX, page_routes
from .live.transport.rooms_http import room_routes
from .live.transport.server import WS_PATH, LiveServer

PLUGIN_DIR = Path(__file__).resolve().parent
PLUGIN_NAME = "astrbot_plugin_live"
VERSION = "0.1.0"

register_offline_providers()


class LiveModePlugin(Star):
    def __init__(self, context: Context, config: AstrBotConfig | None = None) -> None:
        super().__init__(context)
        self.settings = LiveSettings.from_config(config)
        self.services = build_services(context, lambda: self.settings)
        self.server = LiveServer(lambda: self.settings, self.services)
        self.routes = RouteMount()
        self.feeds = PlatformFeeds(self.server.rooms, lambda: self.settings, lambda: dashboard_username(context))
        # The dashboard's plugin-view bridge prefixes the plugin name to the route.
        context.register_web_api(f"{PLUGIN_NAME}/live/status", self.status, ["GET"], "Live Mode status")

    async def initialize(self) -> None:
        self.routes.mount(self._routes())  # hot reload: the dashboard already exists
        self.feeds.start()

    @filter.on_astrbot_loaded()
    async def on_loaded(self) -> None:
        self.routes.mount(self._routes())  # cold boot: the dashboard exists from here on

    @filter.on_waiting_llm_request(priority=100000)
    async def on_waiting_llm_request(self, event: AstrMessageEvent) -> None:
        self.services.agent.admit(event)

    @filter.on_llm_request(priority=100000)
    async def on_llm_request(self, event: AstrMessageEvent, req) -> None:
        self.services.agent.claim(event)

    @filter.on_using_llm_tool(priority=100000)
    async def on_using_llm_tool(self, event: AstrMessageEvent, tool, tool_args) -> None:
        await self.services.agent.gate_tool(event)  # a speculative turn's tool waits for its commit

    @filter.command("live")
    async def live_command(self, event: AstrMessageEvent):
        """Open Live Mode for this conversation."""
        yield event.plain_result(live_link_message(event.unified_msg_origin))

    async def status(self):
        return {
            "version": VERSION,
            "protocol_version": PROTOCOL_VERSION,
            "page_url": "/live/",
            "ws_path": WS_PATH,
            "server_vad": self.services.endpointer is not None,
            **self.services.speech.describe(),
            **self.server.status(),
            "feeds": self.feeds.status(),
        }

    async def terminate(self) -> None:
        self.routes.unmount()
        await self.feeds.stop()
        await self.server.close_all(CloseCode.SERVICE_RESTART, "Live Mode is reloading or stopping")
        await self.services.agent.aclose()
        logger.info("Live Mode stopped")

    def _routes(self) -> list:
        dist = PLUGIN_DIR / "dashboard_ext" / "dist"
        return [
            WebSocketRoute(WS_PATH, self.server.endpoint, name="live_ws"),
            *room_routes(self.server),
            *page_routes(dist, lambda: {"accepting": self.server.accepting, **self.server.end_of_turn_status()}),
            # The host's own index page plus our button script; off = the host serves it untouched.
            *(webchat_index_routes(dist, PAGE_PREFIX) if self.settings.webchat_button else []),
        ]


def live_link_message(umo: str) -> str:
    """The reply to `/live`: a link to the page, bound to this WebChat conversation."""
    parts = umo.split(":", 2)
    session = parts[2] if len(parts) == 3 else ""
    if not umo.startswith("webchat:") or session.count("!") < 2:
        return "Live Mode works in AstrBot's WebChat: open the dashboard's chat and send /live there."
    conversation_id = session.split("!", 2)[2]
    return f"🎙️ Live Mode for this conversation: [/live/?conversation_id={conversation_id}](/live/?conversation_id={conversation_id})"
