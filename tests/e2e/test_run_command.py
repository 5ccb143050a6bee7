"""The README's run command, exactly as written, on a fresh root: it comes up and a newcomer can talk.

`./scripts/run.sh` runs as a child process group with only the documented settings changed
(LIVE_DEMO_DIR: a fresh temporary root; PORT: a free port; OPENAI_*: the local fake chat model).
The test reads the credentials and links the script prints, logs in through the host's login API
(no forced password change), checks the plugin's sidebar page is listed, then logs in on the
Live page's own form in headless Chromium, completes a typed turn, and opens the sidebar page in
the dashboard with that same login. The whole process group is stopped with SIGTERM at the end
and must be gone.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.harness.fake_providers import FakeProviders

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
RUN_COMMAND = "./scripts/run.sh"  # as the README writes it
BOOT_TIMEOUT_S = 300  # a fresh root installs nothing here, but a noisy 2-core CI machine is slow
WAIT_MS = 60_000
QUESTION = "Please tell me a short fact."
ANSWER = "Honey never spoils, even after thousands of years."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Output:
    """The script's stdout and stderr, collected by a thread so the pipe never fills."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for raw in iter(stream.readline, b""):
            self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def find(self, pattern: str) -> re.Match | None:
        return next((m for line in list(self.lines) if (m := re.search(pattern, line))), None)

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.lines[-n:])


@pytest.fixture
def chat_model() -> Iterator[FakeProviders]:
    """The local OpenAI-compatible server on its own loop and thread (the demo's chat model)."""
    fake = FakeProviders(default_reply=ANSWER)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fake-providers", daemon=True)
    thread.start()
    runner = asyncio.run_coroutine_threadsafe(fake.start(), loop).result(10)
    yield fake
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


@pytest.fixture
def demo(tmp_path: Path, chat_model: FakeProviders) -> Iterator[tuple[subprocess.Popen, Output, int]]:
    """`./scripts/run.sh` on a fresh root and a free port, in its own process group."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASTRBOT_", "OPENAI_", "LIVE_DEMO_"))}
    env.update(
        PORT=str(port),
        LIVE_DEMO_DIR=str(tmp_path / "demo-root"),
        OPENAI_API_KEY="sk-fake",
        OPENAI_BASE_URL=chat_model.base_url,
        OPENAI_MODEL="fake-model",
    )
    proc = subprocess.Popen(
        [RUN_COMMAND], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    out = Output(proc.stdout)
    try:
        yield proc, out, port
    finally:
        stop_group(proc)


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the whole group (AstrBot ignores SIGINT when started in the background)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            raise AssertionError("the demo did not stop within 60 s of SIGTERM") from None


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def http_json(url: str, body: dict | None = None, token: str | None = None) -> dict:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=10) as resp:
        return json.loads(resp.read())


def wait_healthy(proc: subprocess.Popen, out: Output, base: str) -> None:
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{RUN_COMMAND} exited with {proc.returncode}:\n{out.tail()}")
        try:
            if http_json(f"{base}/api/v1/live/health").get("ok"):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"no /api/v1/live/health within {BOOT_TIMEOUT_S} s:\n{out.tail()}")


def test_the_readme_run_command_comes_up_and_answers_a_typed_turn(demo, launch, quiet_mic, artifacts):
    proc, out, port = demo
    base = f"http://localhost:{port}"
    wait_healthy(proc, out, base)

    # What the script printed: links with the real port, and credentials that log straight in.
    live_link = out.find(r"Live Mode:\s+(\S+)")
    assert live_link and live_link.group(1) == f"{base}/live/", out.tail()
    assert out.find(rf"Dashboard:\s+{re.escape(base)}/"), out.tail()
    user, password = out.find(r"Log in as:\s+(\S+)"), out.find(r"Password:\s+(\S+)")
    assert user and password, out.tail()
    login = http_json(f"{base}/api/v1/auth/login", {"username": user.group(1), "password": password.group(1)})
    assert login["status"] == "ok", login
    assert login["data"]["token"]
    assert login["data"]["change_pwd_hint"] is False, login  # the host does not force a password change

    # The plugin's sidebar page is listed (the host refuses pages of a symlinked plugin folder).
    detail = http_json(f"{base}/api/v1/plugins/views?plugin_id=astrbot_plugin_live", token=login["data"]["token"])
    pages = [c["name"] for c in detail["data"]["components"] if c["type"] == "page"]
    assert pages == ["live"], detail["data"]["components"]

    # The Live page asks for the login itself, then answers a typed turn.
    page = launch(quiet_mic).new_context(viewport={"width": 1280, "height": 800}, locale="en-US").new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(live_link.group(1))
    form = page.get_by_test_id("login-form")
    expect(form).to_be_visible(timeout=WAIT_MS)
    page.get_by_test_id("login-username").locator("input").fill(user.group(1))
    page.get_by_test_id("login-password").locator("input").fill(password.group(1))
    page.screenshot(path=str(artifacts / "run-command-login.png"))
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-status", "open", timeout=WAIT_MS)
    # Stored where the dashboard keeps it: both pages share one login.
    assert page.evaluate("localStorage.getItem('token')")

    page.get_by_test_id("text-input").locator("input").fill(QUESTION)
    page.get_by_test_id("send-button").click()
    transcript = page.get_by_test_id("transcript")
    expect(transcript.locator("[data-role=user] .bubble").last).to_have_text(QUESTION, timeout=WAIT_MS)
    expect(transcript.locator("[data-role=bot] .bubble").last).to_have_text(ANSWER, timeout=WAIT_MS)
    page.screenshot(path=str(artifacts / "run-command-turn.png"))
    assert not errors, errors

    # The same login opens the dashboard, whose sidebar has the plugin's page, showing the real port.
    page.goto(f"{base}/#/plugin-view/astrbot_plugin_live/live")
    view = page.frame_locator("iframe[src*='/views/live/']")
    expect(view.locator("#page-url")).to_have_value(f"{base}/live/", timeout=WAIT_MS)
    assert "/auth/login" not in page.url, page.url
    page.screenshot(path=str(artifacts / "run-command-sidebar-view.png"))
    page.context.close()

    # One SIGTERM to the group ends everything the command started.
    stop_group(proc)
    deadline = time.monotonic() + 10
    while group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not group_alive(proc.pid), "processes of the demo outlived SIGTERM"
