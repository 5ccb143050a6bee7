"""The host's index page with the WebChat button script: added once, or the host's page untouched.

The app is a real FastAPI app with the host's own static-file router (from the astrbot wheel)
and a dashboard folder of our own; requests go through it in-process (httpx ASGI transport).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from live.host.webchat_page import (
    SCRIPT_MARK,
    host_index_routes,
    inject_script,
    webchat_index_routes,
    webchat_script_url,
)

HOST_INDEX = '<!doctype html>\n<html lang="zh-CN">\n  <head>\n    <title>AstrBot Dashboard</title>\n  </HEAD >\n  <body><div id="app"></div></body>\n</html>\n'  # fmt: skip


def host_app(dashboard: Path) -> FastAPI:
    from astrbot.dashboard.api.static_files import router

    app = FastAPI()
    app.include_router(router)
    app.state.dashboard_static_folder = str(dashboard)
    return app


def mount(app: FastAPI, routes: list) -> None:
    for route in reversed(routes):
        app.router.routes.insert(0, route)


async def get(app: FastAPI, path: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dash") as client:
        return await client.get(path)


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    dashboard = tmp_path / "host-dist"
    dashboard.mkdir()
    (dashboard / "index.html").write_text(HOST_INDEX, encoding="utf-8")
    live_dist = tmp_path / "live-dist"
    (live_dist / "assets").mkdir(parents=True)
    (live_dist / "assets" / "webchat-AbC123.js").write_text("// button", encoding="utf-8")
    return dashboard, live_dist


def test_the_script_goes_before_the_head_end_once():
    page = inject_script(HOST_INDEX, "/live/assets/webchat-x.js")
    assert page is not None
    added = '<script type="module" src="/live/assets/webchat-x.js" data-astrbot-live="webchat"></script>\n'
    assert page == HOST_INDEX.replace("</HEAD >", added + "</HEAD >")
    assert inject_script(page, "/live/assets/webchat-x.js") is None  # never twice
    assert inject_script("<html><body>no head</body></html>", "/x.js") is None


def test_the_built_script_is_found_only_when_there_is_exactly_one(tmp_path: Path):
    assets = tmp_path / "assets"
    assets.mkdir()
    assert webchat_script_url(tmp_path, "/live") is None
    (assets / "webchat-1.js").write_text("")
    assert webchat_script_url(tmp_path, "/live") == "/live/assets/webchat-1.js"
    (assets / "webchat-2.js").write_text("")
    assert webchat_script_url(tmp_path, "/live") is None  # a mixed build: leave the page alone


def test_finds_every_path_the_host_serves_its_index_at(folders):
    app = host_app(folders[0])
    paths = [path for path, _handler in host_index_routes(app)]
    assert paths[0] == "/" and "/chat" in paths and "/auth/login" in paths
    assert "/{static_path:path}" not in paths
    assert host_index_routes(FastAPI()) == []


async def test_serves_the_host_page_with_the_script_at_each_index_path(folders):
    dashboard, live_dist = folders
    app = host_app(dashboard)
    mount(app, webchat_index_routes(live_dist, "/live", app))
    for path in ("/", "/chat", "/auth/login"):
        response = await get(app, path)
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        assert response.text == inject_script(HOST_INDEX, "/live/assets/webchat-AbC123.js"), path
    assert (await get(app, "/favicon.svg")).status_code == 404  # other files are still the host's


async def test_a_rebuilt_live_page_is_picked_up_without_a_remount(folders):
    dashboard, live_dist = folders
    app = host_app(dashboard)
    mount(app, webchat_index_routes(live_dist, "/live", app))
    (live_dist / "assets" / "webchat-AbC123.js").rename(live_dist / "assets" / "webchat-New456.js")
    assert "/live/assets/webchat-New456.js" in (await get(app, "/")).text


async def test_without_our_script_or_a_head_the_host_serves_its_page_untouched(folders):
    dashboard, live_dist = folders
    app = host_app(dashboard)
    mount(app, webchat_index_routes(live_dist, "/live", app))
    (live_dist / "assets" / "webchat-AbC123.js").unlink()
    response = await get(app, "/chat")
    assert response.status_code == 200 and response.text == HOST_INDEX

    headless = "<html><body>another host version</body></html>"
    (dashboard / "index.html").write_text(headless, encoding="utf-8")
    (live_dist / "assets" / "webchat-AbC123.js").write_text("", encoding="utf-8")
    assert (await get(app, "/")).text == headless

    (dashboard / "index.html").unlink()
    response = await get(app, "/")
    assert response.status_code == 404 and SCRIPT_MARK not in response.text  # the host's own "files missing" page


def test_a_host_without_known_index_routes_gets_no_route(folders):
    app = FastAPI()
    app.state.dashboard_static_folder = str(folders[0])
    assert webchat_index_routes(folders[1], "/live", app) == []
