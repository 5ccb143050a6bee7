"""Mounting our routes on the host dashboard's FastAPI app, idempotently.

The app object is private (`astrbot.dashboard.server.APP._app`); it exists
only after the dashboard is constructed, so we mount at `on_astrbot_loaded`
(cold boot) and in `initialize` (hot reload), and unmount in `terminate`.
"""

from __future__ import annotations

from typing import Any

from starlette.routing import BaseRoute

from ..log import logger

# AstrBot (4.26+) serves `register_web_api` handlers (our status route, any plugin's) through a
# Quart compatibility layer it imports on the first such request, on its event loop: ~0.75-1 s in
# which no live microphone is read. Imported here, it loads with the plugin, before any session.
try:
    import quart  # noqa: F401
except ImportError:  # a host without the layer: nothing to load
    pass


OWNER_MARK = "_astrbot_live_mode"


def dashboard_app() -> Any | None:
    try:
        from astrbot.dashboard import server
    except Exception:
        return None
    adapter = getattr(server, "APP", None)
    return getattr(adapter, "_app", None) if adapter is not None else None


class RouteMount:
    """Owns the routes this plugin instance put on the dashboard app."""

    def __init__(self) -> None:
        self._app: Any | None = None
        self._routes: list[BaseRoute] = []

    def mount(self, routes: list[BaseRoute]) -> bool:
        """Insert our routes ahead of the SPA catch-all; a second call is a no-op."""
        app = dashboard_app()
        if app is None:
            return False
        if self._app is app and self._routes:
            return True
        table = app.router.routes
        stale = [r for r in table if getattr(r, OWNER_MARK, False)]  # left by an instance that crashed
        for route in stale:
            table.remove(route)
        for route in reversed(routes):
            setattr(route, OWNER_MARK, True)
            table.insert(0, route)
        self._app, self._routes = app, list(routes)
        logger.info("Live Mode mounted %d routes on the dashboard", len(routes))
        return True

    def unmount(self) -> None:
        if self._app is not None:
            table = self._app.router.routes
            for route in self._routes:
                if route in table:
                    table.remove(route)
        self._routes = []
