"""Shared fixtures: one fake provider server and one booted AstrBot per test run.

ASTRBOT_ROOT must be set before anything imports astrbot, so it is set here,
at import time of the first conftest.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
import pytest_asyncio

REPO = Path(__file__).resolve().parents[1]
_ROOT = Path(tempfile.mkdtemp(prefix="live-astrbot-"))
os.environ.setdefault("ASTRBOT_ROOT", str(_ROOT))
os.environ.setdefault("ASTRBOT_DISABLE_METRICS", "1")
os.environ.setdefault("ASTRBOT_TEST_MODE", "true")
sys.path.insert(0, str(REPO))

from tests.harness.astrbot_server import BootedAstrBot  # noqa: E402
from tests.harness.fake_providers import FakeProviders  # noqa: E402
from tests.harness.live_client import LiveClient  # noqa: E402


PLUGIN_CONFIG = {"stt_provider_id": "fake_stt", "tts_provider_id": "fake_tts"}


@pytest.fixture(scope="session")
def providers() -> FakeProviders:
    return FakeProviders()


@pytest.fixture(scope="session")
def astrbot(providers: FakeProviders):
    server = BootedAstrBot(Path(os.environ["ASTRBOT_ROOT"]), REPO, providers, PLUGIN_CONFIG)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(_ROOT, ignore_errors=True)


@pytest.fixture
def fake(providers: FakeProviders, astrbot: BootedAstrBot) -> FakeProviders:
    """The provider server, reset for this test."""
    providers.reset()
    return providers


@pytest_asyncio.fixture
async def connect(astrbot: BootedAstrBot):
    """`await connect(**query)` opens a live socket as the dashboard user (closed after the test)."""
    clients: list[LiveClient] = []

    async def _connect(*, token: str | None = "default", headers: dict | None = None, **query) -> LiveClient:
        if token == "default":
            token = astrbot.jwt()
        client = await LiveClient.open(astrbot.ws_url(token=token, **query), headers=headers)
        clients.append(client)
        return client

    yield _connect
    for client in clients:
        await client.close()
