"""The plugin imports the host's Quart compatibility layer in a thread at load, not on the event loop.

AstrBot imports Quart on the first `/api/plug/` request, on its loop (~0.75-1 s in which no live
microphone is read); `warm_web_api` does it first, off the loop.
"""

import asyncio
import threading

from live.host import dashboard


async def test_quart_is_imported_off_the_event_loop(monkeypatch):
    imported: list[tuple[str, int]] = []
    monkeypatch.setattr(dashboard.importlib, "import_module", lambda name: imported.append((name, threading.get_ident())))
    await dashboard.warm_web_api()
    assert [name for name, _ in imported] == ["quart"]
    assert imported[0][1] != threading.get_ident()  # a worker thread, not the loop's


async def test_a_host_without_quart_is_fine(monkeypatch):
    def missing(name):
        raise ImportError(name)

    monkeypatch.setattr(dashboard.importlib, "import_module", missing)
    await dashboard.warm_web_api()  # nothing to warm: no error


def test_the_real_import_works():
    asyncio.run(dashboard.warm_web_api())
    import sys

    assert "quart" in sys.modules
