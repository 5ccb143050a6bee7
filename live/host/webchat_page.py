"""The host dashboard's own index page with one extra module script: the WebChat "Live Mode" button.

The dashboard is a compiled Vue app whose every page is a hash route, so the
index page is the only HTML the host serves for it. We answer the host's index
paths ourselves (our routes go ahead of the host's) with the host's own
`index.html`, byte for byte, plus one `<script type="module">` before `</head>`.
The script (dashboard_ext/src/webchat) finds WebChat's input bar and adds the
button; it changes nothing when the bar is not there.

Fail safe, on the server side: when the host has no index route we know, nothing
is mounted; when its index file (or a `</head>` in it) or our built script is
missing at a request, that request goes to the host's own handler, untouched.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from ..log import logger
from .dashboard import dashboard_app

SCRIPT_GLOB = "webchat-*.js"  # the Vite entry `webchat` lands at dist/assets/webchat-<hash>.js
SCRIPT_MARK = "data-astrbot-live"
HOST_INDEX_HANDLER = "serve_index"  # astrbot/dashboard/api/static_files.py (AstrBot 4.26-4.29)
_HEAD_END = re.compile(r"</head\s*>", re.IGNORECASE)


def webchat_script_url(dist: Path, page_prefix: str) -> str | None:
    """The URL of the built button script, or None when the build has no single one."""
    found = sorted((dist / "assets").glob(SCRIPT_GLOB))
    if len(found) != 1:
        return None
    return f"{page_prefix}/assets/{found[0].name}"


def inject_script(html: str, script_url: str) -> str | None:
    """The page with our module script added before `</head>`; None if it has no head or has it already."""
    if SCRIPT_MARK in html:
        return None
    match = _HEAD_END.search(html)
    if match is None:
        return None
    tag = f'<script type="module" src="{script_url}" {SCRIPT_MARK}="webchat"></script>\n'
    return html[: match.start()] + tag + html[match.start() :]


def host_index_routes(app: Any) -> list[tuple[str, Callable[[Request], Awaitable[Response]]]]:
    """The paths at which the host serves its index page, with the host's handler for each."""
    found: list[tuple[str, Callable[[Request], Awaitable[Response]]]] = []

    def walk(routes: list, prefix: str) -> None:
        for route in routes:
            # FastAPI >= 0.16x keeps an included router as one entry holding the original router.
            included = getattr(route, "original_router", None)
            if included is not None:
                context = getattr(route, "include_context", None)
                walk(getattr(included, "routes", []), prefix + str(getattr(context, "prefix", "") or ""))
                continue
            endpoint = getattr(route, "endpoint", None)
            methods = getattr(route, "methods", None) or set()
            if getattr(endpoint, "__name__", "") == HOST_INDEX_HANDLER and "GET" in methods:
                found.append((prefix + route.path, endpoint))

    walk(list(getattr(getattr(app, "router", None), "routes", [])), "")
    return found


def _read_index(folder: str | Path | None) -> str | None:
    if not folder:
        return None
    index = Path(folder) / "index.html"
    try:
        return index.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _index_headers(request: Request) -> dict[str, str]:
    """The headers the host sends with its index page (static_files.serve_index)."""
    headers = {"Cache-Control": "no-store"}
    try:
        from astrbot.core.desktop_runtime import is_desktop_managed_backend

        if is_desktop_managed_backend() and request.query_params.get("astrbot_bundle"):
            headers["Clear-Site-Data"] = '"cache"'  # the desktop app's new bundle: drop its old cache
    except Exception:  # another host version: the plain page headers
        pass
    return headers


def webchat_index_routes(dist: Path, page_prefix: str, app: Any | None = None) -> list[BaseRoute]:
    """Routes that serve the host's index page with the button script; [] when the host has none we know.

    `app` is the dashboard's FastAPI app, by default the running host's.
    """
    app = app if app is not None else dashboard_app()
    if app is None:
        return []  # cold boot before the dashboard exists: the mount after it calls us again
    host_routes = host_index_routes(app)
    if not host_routes:
        logger.info("Live Mode: no WebChat button (the host serves no index page we know); the dashboard is unchanged")
        return []
    if webchat_script_url(dist, page_prefix) is None:
        logger.info("Live Mode: no WebChat button until the Live page is built (dashboard_ext/dist)")

    def page_with_button(folder: str | Path | None) -> str | None:
        # Both are read per request: a rebuilt Live page has a new script name.
        script_url = webchat_script_url(dist, page_prefix)
        html = _read_index(folder)
        return inject_script(html, script_url) if html is not None and script_url is not None else None

    def index_handler(host_handler: Callable[[Request], Awaitable[Response]]):
        async def serve(request: Request) -> Response:
            folder = getattr(request.app.state, "dashboard_static_folder", None)
            page = await asyncio.to_thread(page_with_button, folder)
            if page is None:
                return await host_handler(request)  # the host's page, as the host serves it
            return HTMLResponse(page, headers=_index_headers(request))

        return serve

    return [
        Route(path, index_handler(handler), methods=["GET"], name=f"live_webchat_index{path.replace('/', '_')}")
        for path, handler in host_routes
    ]
