"""Boots a real AstrBot 4.29 (core + dashboard) with this plugin, in a thread.

The server runs on its own event loop in a background thread, like a real
server: tests talk to it over real HTTP and WebSockets from their own loop
(or from a browser), and can run coroutines on the server loop with `call`.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jwt

from .fake_providers import FakeProviders

PLUGIN_NAME = "astrbot_plugin_live"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def provider_config(base_url: str) -> dict:
    return {
        "provider": [
            {"id": "fake_chat", "provider": "openai", "type": "openai_chat_completion",
             "provider_type": "chat_completion", "enable": True, "key": ["sk-fake"],
             "api_base": base_url, "model": "fake-model", "timeout": 30},
            {"id": "fake_stt", "provider": "openai", "type": "openai_whisper_api",
             "provider_type": "speech_to_text", "enable": True, "api_key": "sk-fake",
             "api_base": base_url, "model": "whisper-1"},
            {"id": "fake_tts", "provider": "openai", "type": "openai_tts_api",
             "provider_type": "text_to_speech", "enable": True, "api_key": "sk-fake",
             "api_base": base_url, "model": "tts-1", "openai-tts-voice": "alloy", "timeout": "20"},
            {"id": "live_local_stt", "type": "live_local_stt", "provider": "live_mode",
             "provider_type": "speech_to_text", "enable": True, "model": "tiny.en", "preload": False},
            {"id": "live_local_tts", "type": "live_local_tts", "provider": "live_mode",
             "provider_type": "text_to_speech", "enable": True, "engine": "piper", "preload": False},
        ],
        "provider_settings": {"enable": True, "default_provider_id": "fake_chat", "streaming_response": True},
        "provider_stt_settings": {"enable": True, "provider_id": "fake_stt"},
        "provider_tts_settings": {"enable": False, "provider_id": "fake_tts"},
    }  # fmt: skip


class BootedAstrBot:
    def __init__(self, root: Path, plugin_dir: Path, providers: FakeProviders, plugin_config: dict | None = None) -> None:
        self.root = root
        self.plugin_dir = plugin_dir
        self.providers = providers
        self.plugin_config = plugin_config or {}
        self.port = free_port()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.lifecycle: Any = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, path: str = "/api/v1/live/ws", **query: Any) -> str:
        from urllib.parse import urlencode

        qs = urlencode({k: v for k, v in query.items() if v is not None})
        return f"ws://127.0.0.1:{self.port}{path}" + (f"?{qs}" if qs else "")

    # ---------------------------------------------------------- lifecycle

    def start(self, timeout: float = 90) -> None:
        self._prepare_root()
        self._thread = threading.Thread(target=self._run, name="astrbot-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("AstrBot did not start in time")
        if self._error:
            raise RuntimeError("AstrBot failed to start") from self._error

    def stop(self) -> None:
        if self.loop and self._stopped:
            self.loop.call_soon_threadsafe(self._stopped.set)
        if self._thread:
            self._thread.join(timeout=60)

    def call(self, fn: Callable[[], Awaitable[Any]], timeout: float = 30) -> Any:
        """Run a coroutine on the server's loop and return its result."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(_invoke(fn), self.loop).result(timeout)

    def _prepare_root(self) -> None:
        data = self.root / "data"
        (data / "plugins").mkdir(parents=True, exist_ok=True)
        (data / "config").mkdir(parents=True, exist_ok=True)
        link = data / "plugins" / PLUGIN_NAME
        if not link.exists():
            link.symlink_to(self.plugin_dir, target_is_directory=True)
        if self.plugin_config:
            (data / "config" / f"{PLUGIN_NAME}_config.json").write_text(
                json.dumps(self.plugin_config), encoding="utf-8-sig"
            )

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main())
        except BaseException as exc:  # surfaced to start()
            self._error = exc
            self._ready.set()
        finally:
            self.loop.close()

    async def _main(self) -> None:
        self._stopped = asyncio.Event()
        runner = await self.providers.start()
        config_path = self.root / "data" / "cmd_config.json"
        config = json.loads(config_path.read_text(encoding="utf-8-sig")) if config_path.exists() else {}
        # A test that imported astrbot before this boot made it write its default config (no providers);
        # a reboot of the same root keeps what earlier tests set.
        if not any(p.get("id") == "fake_chat" for p in config.get("provider", [])):
            config.update(provider_config(self.providers.base_url))
            config.setdefault("dashboard", {})["enable"] = True
            config_path.parent.mkdir(parents=True, exist_ok=True)
            config_path.write_text(json.dumps(config), encoding="utf-8-sig")
        os.environ["DASHBOARD_PORT"] = str(self.port)
        os.environ["DASHBOARD_HOST"] = "127.0.0.1"
        if str(self.root) not in sys.path:
            sys.path.insert(0, str(self.root))
        from astrbot.core import LogBroker, db_helper
        from astrbot.core.core_lifecycle import AstrBotCoreLifecycle
        from astrbot.dashboard.server import AstrBotDashboard

        lifecycle = self.lifecycle = AstrBotCoreLifecycle(LogBroker(), db_helper)
        await lifecycle.initialize()
        core = asyncio.create_task(lifecycle.start(), name="astrbot-core")
        dashboard = AstrBotDashboard(lifecycle, db_helper, lifecycle.dashboard_shutdown_event, None)
        served = asyncio.create_task(dashboard.run(), name="astrbot-dashboard")
        await self._wait_until_serving()
        self._ready.set()
        await self._stopped.wait()
        lifecycle.dashboard_shutdown_event.set()
        await lifecycle.stop()
        for task in (core, served):
            task.cancel()
        await asyncio.gather(core, served, return_exceptions=True)
        await runner.cleanup()

    async def _wait_until_serving(self) -> None:
        import aiohttp

        deadline = time.monotonic() + 60
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                try:
                    async with http.get(f"{self.base_url}/api/v1/live/health") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError("the dashboard never served the Live Mode health route")

    # ---------------------------------------------------------- host access

    @property
    def jwt_secret(self) -> str:
        return self.lifecycle.astrbot_config["dashboard"]["jwt_secret"]

    def jwt(self, username: str = "astrbot", *, expires_in: float = 3600, secret: str | None = None) -> str:
        payload = {"username": username, "exp": int(time.time() + expires_in)}
        return jwt.encode(payload, secret or self.jwt_secret, algorithm="HS256")

    @contextmanager
    def test_plugin(self, name: str) -> Iterator[Any]:
        """Install `tests/harness/<name>` (a real plugin) into this AstrBot, yield its instance, uninstall it."""
        manager = self.lifecycle.plugin_manager
        shutil.copytree(Path(__file__).resolve().parent / name, self.root / "data" / "plugins" / name, dirs_exist_ok=True)

        async def load():
            ok, error = await manager.load(specified_dir_name=name)
            assert ok, error
            return manager.context.get_registered_star(name).star_cls

        try:
            yield self.call(load)
        finally:

            async def unload():
                await manager.uninstall_plugin(name)

            self.call(unload)

    def plugin(self) -> Any:
        """The live plugin instance currently loaded."""
        for meta in self.lifecycle.plugin_manager.context.get_all_stars():
            if meta.name == PLUGIN_NAME and meta.star_cls is not None:
                return meta.star_cls
        raise LookupError("the Live Mode plugin is not loaded")

    def dashboard_routes(self) -> list:
        from astrbot.dashboard import server

        return list(server.APP._app.router.routes)


async def _invoke(fn: Callable[[], Awaitable[Any]]) -> Any:
    return await fn()
