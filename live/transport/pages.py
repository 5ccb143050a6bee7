"""HTTP routes for the Live page (the built Vue app) and its status endpoint.

The page is served top-level on the dashboard origin, because the sidebar
iframe is sandboxed and cannot use a microphone.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

PAGE_PREFIX = "/live"
mimetypes.add_type("application/wasm", ".wasm")
mimetypes.add_type("text/javascript", ".mjs")


def page_routes(dist: Path, status: Callable[[], dict]) -> list[Route]:
    root = dist.resolve()

    async def redirect(request: Request) -> Response:
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(f"{request.url.path}/{query}", status_code=307)

    async def asset(request: Request) -> Response:
        relative = request.path_params.get("path") or "index.html"
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

    async def status_endpoint(_request: Request) -> Response:
        return JSONResponse({"ok": True, "data": status()})

    return [
        Route(PAGE_PREFIX, redirect, methods=["GET"], name="live_page_redirect"),
        Route(f"{PAGE_PREFIX}/", asset, methods=["GET"], name="live_page"),
        Route(f"{PAGE_PREFIX}/{{path:path}}", asset, methods=["GET"], name="live_page_assets"),
        Route("/api/v1/live/health", status_endpoint, methods=["GET"], name="live_health"),
    ]
