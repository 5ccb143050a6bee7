"""HTTP routes for the Live page (the built Vue app), its OBS overlay, and the status endpoint.

The page is served top-level on the dashboard origin, because the sidebar
iframe is sandboxed and cannot use a microphone. The overlay (`overlay.html`
in the same build) is served at `/live/overlay`.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

PAGE_PREFIX = "/live"
OVERLAY_PATH = f"{PAGE_PREFIX}/overlay"
mimetypes.add_type("application/wasm", ".wasm")
mimetypes.add_type("text/javascript", ".mjs")


def page_routes(dist: Path, status: Callable[[], dict]) -> list[Route]:
    root = dist.resolve()

    async def redirect(request: Request) -> Response:
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(f"{request.url.path}/{query}", status_code=307)

    async def overlay_redirect(request: Request) -> Response:
        # The overlay's asset URLs are relative to /live/: at "/live/overlay/" they would resolve
        # under /live/overlay/assets/, so the slash form moves to the bare one. The target is
        # relative, so a reverse-proxy prefix in front of /live is kept.
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(f"../overlay{query}", status_code=307)

    async def overlay(_request: Request) -> Response:
        return _file(root, "overlay.html")

    async def asset(request: Request) -> Response:
        return _file(root, request.path_params.get("path") or "index.html")

    async def status_endpoint(_request: Request) -> Response:
        return JSONResponse({"ok": True, "data": status()})

    return [
        Route(PAGE_PREFIX, redirect, methods=["GET"], name="live_page_redirect"),
        Route(f"{PAGE_PREFIX}/", asset, methods=["GET"], name="live_page"),
        Route(OVERLAY_PATH, overlay, methods=["GET"], name="live_overlay"),
        Route(f"{OVERLAY_PATH}/", overlay_redirect, methods=["GET"], name="live_overlay_redirect"),
        Route(f"{PAGE_PREFIX}/{{path:path}}", asset, methods=["GET"], name="live_page_assets"),
        Route("/api/v1/live/health", status_endpoint, methods=["GET"], name="live_health"),
    ]


def _file(root: Path, relative: str) -> Response:
    """A file of the built page (index.html for a folder), or 404 / 503 when it is not there."""
    target = (root / relative).resolve()
    if not target.is_relative_to(root):
        return PlainTextResponse("not found", status_code=404)
    if target.is_dir():
        target = target / "index.html"
    if not target.is_file():
        if not (root / "index.html").is_file():
            return PlainTextResponse(
                "The Live Mode page is not built: run `npm ci && npm run build` in dashboard_ext/.",
                status_code=503,
            )
        return PlainTextResponse("not found", status_code=404)
    immutable = "/assets/" in f"/{relative}"
    headers = {"Cache-Control": "public, max-age=31536000, immutable" if immutable else "no-cache"}
    return FileResponse(target, headers=headers)
