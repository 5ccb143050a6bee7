"""The OBS overlay and the Live page's room panel in a real browser, against a real AstrBot room.

Headless Chromium opens `/live/overlay?room=…` (a `listener` of the room, as an OBS browser source
would); the other members are plain WebSockets from the test: the streamer, or a danmaku bridge.
The fake LLM scripts the replies. What the overlay shows is read from the DOM, what it received
from `window.__liveTest.log`. Screenshots go to test-artifacts/e2e/.
"""

from __future__ import annotations

import http.client
import itertools
import json
import queue
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, expect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.e2e.test_live_page import WAIT_MS, log_summary, shot, wait_log

pytestmark = pytest.mark.browser

QUESTION = "What should we play next on stream?"
ANSWER = "Let us try a puzzle game next. The chat seems to love those."
VIEWER_TEXT = "hello! can you sing something?"
VIEWER_ANSWER = "Hi Mika, thanks for dropping by! I will hum a little tune for you."
TRANSPARENT = "rgba(0, 0, 0, 0)"

_owners = itertools.count()


def fresh_owner(astrbot) -> tuple[str, str]:
    """A streamer of its own per test (username, JWT): rooms linger, and an owner may open only a few."""
    username = f"e2e-streamer-{next(_owners)}-{uuid.uuid4().hex[:6]}"
    return username, astrbot.jwt(username)


class Member:
    """A room member driven from the test thread; a reader thread keeps its socket drained."""

    def __init__(self, url: str) -> None:
        self.ws: ClientConnection = connect(url, max_size=64 * 1024 * 1024, open_timeout=10)
        self.frames: list[dict] = []
        self._inbox: queue.Queue[dict] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for raw in self.ws:
                if isinstance(raw, str):
                    frame = json.loads(raw)
                    self.frames.append(frame)
                    self._inbox.put(frame)
        except ConnectionClosed:  # closed abnormally: the reader's job is done all the same
            return

    def send(self, frame: dict) -> None:
        self.ws.send(json.dumps(frame))

    def until(self, t: str, timeout: float = WAIT_MS / 1000, **match: Any) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {t!r} frame; got {[f.get('t') for f in self.frames[-20:]]}")
            try:
                frame = self._inbox.get(timeout=remaining)
            except queue.Empty:
                continue
            if frame.get("t") == t and all(frame.get(k) == v for k, v in match.items()):
                return frame

    def close(self) -> None:
        self.ws.close()
        self._reader.join(timeout=5)


@pytest.fixture
def members(astrbot):
    """`members(**query)` opens a room member socket (closed after the test, before the browser)."""
    opened: list[Member] = []

    def _open(**query) -> Member:
        member = Member(astrbot.ws_url(**query))
        opened.append(member)
        return member

    yield _open
    for member in opened:
        member.close()


def open_overlay(browser, astrbot, query: str, viewport: dict | None = None) -> Page:
    ctx = browser.new_context(viewport=viewport or {"width": 1280, "height": 720})
    page = ctx.new_page()
    page.errors = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))  # type: ignore[attr-defined]
    page.goto(f"{astrbot.base_url}/live/overlay?{query}")
    wait_log(page, "e.kind === 'frame' && e.t === 'room'")  # joined: the room's first snapshot arrived
    return page


def overlay_shot(page: Page, artifacts: Path, name: str) -> Path:
    """The overlay as OBS composites it: only what it paints, over nothing (alpha kept)."""
    path = artifacts / f"{name}.png"
    page.screenshot(path=str(path), omit_background=True)
    return path


def caption(page: Page):
    return page.get_by_test_id("overlay-caption")


# ------------------------------------------------------------------ tests


def test_overlay_captions_a_streamer_turn_over_a_transparent_background(
    astrbot, fake, launch, quiet_mic, members, artifacts
):
    """Overlay (listener) + streamer socket in one room: the typed question and the reply appear, then fade."""
    room = f"e2e-{uuid.uuid4().hex[:8]}"
    _, token = fresh_owner(astrbot)
    fake.script_reply(ANSWER)
    overlay = open_overlay(launch(quiet_mic), astrbot, f"room={room}&token={token}&hold=1")
    hello = wait_log(overlay, "e.kind === 'frame' && e.t === 'hello'")
    assert hello, log_summary(overlay)

    streamer = members(token=token, room=room, audio=0)
    assert streamer.until("hello")["data"]["room"] == {"name": room, "role": "streamer", "audio": False}
    streamer.send({"t": "text_input", "text": QUESTION})
    user = streamer.until("user_msg")

    expect(caption(overlay)).to_have_attribute("data-turn", user["turn"], timeout=WAIT_MS)
    expect(overlay.get_by_test_id("overlay-user")).to_have_text(QUESTION, timeout=WAIT_MS)
    expect(overlay.get_by_test_id("overlay-bot")).to_have_text(ANSWER, timeout=WAIT_MS)
    expect(caption(overlay)).to_have_attribute("data-visible", "true")

    # Transparent where it paints nothing: OBS shows the video there.
    backgrounds = overlay.evaluate(
        "[document.documentElement, document.body].map((el) => getComputedStyle(el).backgroundColor)"
    )
    assert backgrounds == [TRANSPARENT, TRANSPARENT], backgrounds
    png = overlay_shot(overlay, artifacts, "overlay-streamer-turn")
    try:
        from PIL import Image
    except ImportError:  # the computed style above already holds
        pass
    else:
        with Image.open(png) as im:
            assert im.mode == "RGBA"
            assert im.getpixel((5, 5))[3] == 0  # a corner far from the captions
            assert im.getchannel("A").getextrema()[1] == 255  # the captions themselves are opaque

    # The turn ends; a moment later (hold=1 s) the caption fades out. The overlay asked for no audio.
    end = streamer.until("end", turn=user["turn"])
    assert end["data"]["text"] == ANSWER
    expect(caption(overlay)).to_have_attribute("data-visible", "false", timeout=WAIT_MS)
    received = [e["t"] for e in overlay.evaluate("window.__liveTest.log") if e["kind"] == "frame"]
    assert "end" in received and "response" not in received, received
    assert not overlay.errors  # type: ignore[attr-defined]

    # The overlay is served at /live/overlay; the slash form moves there, query and all.
    parts = urlsplit(astrbot.base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request("GET", f"/live/overlay/?room={room}")
    response = conn.getresponse()
    assert response.status == 307 and response.getheader("Location") == f"../overlay?room={room}"
    conn.close()


def test_a_viewer_line_reaches_the_overlay_and_the_streamers_room_panel(
    astrbot, fake, launch, quiet_mic, members, artifacts
):
    """The Live page streams in a room, OBS (audio on) listens, a bridge sends danmaku: all see it, OBS plays it."""
    room = f"e2e-{uuid.uuid4().hex[:8]}"
    _, token = fresh_owner(astrbot)
    fake.script_reply(VIEWER_ANSWER)
    browser = launch(quiet_mic)

    # The streamer's Live page, in the room from its URL.
    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US", color_scheme="light")
    ctx.grant_permissions(["clipboard-read", "clipboard-write"])
    ctx.add_init_script(f"window.localStorage.setItem('token', {json.dumps(token)})")
    page = ctx.new_page()
    page.errors = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))  # type: ignore[attr-defined]
    page.goto(f"{astrbot.base_url}/live/?room={room}")
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-status", "open", timeout=WAIT_MS)
    expect(page.get_by_test_id("room-name")).to_have_text(room, timeout=WAIT_MS)

    overlay = open_overlay(browser, astrbot, f"room={room}&token={token}&audio=1")
    bridge = members(token=token, room=room, role="bridge")
    assert bridge.until("hello")["data"]["room"]["role"] == "bridge"
    members_chip = page.get_by_test_id("room-members")
    expect(members_chip).to_have_attribute("data-streamer", "1", timeout=WAIT_MS)
    expect(members_chip).to_have_attribute("data-listener", "1", timeout=WAIT_MS)
    expect(members_chip).to_have_attribute("data-bridge", "1", timeout=WAIT_MS)

    bridge.send({"t": "viewer_event", "kind": "danmaku", "user": {"name": "Mika", "id": "42"}, "text": VIEWER_TEXT})
    user = bridge.until("user_msg")
    turn = user["turn"]
    assert user["data"]["viewers"][0]["name"] == "Mika", user

    # OBS: the viewer's name and line, then the character's words; and it plays the voice.
    viewer = overlay.get_by_test_id("overlay-viewer")
    expect(viewer.locator(".name")).to_have_text("Mika", timeout=WAIT_MS)
    expect(viewer.locator(".said")).to_have_text(VIEWER_TEXT)
    expect(overlay.get_by_test_id("overlay-bot")).to_have_text(VIEWER_ANSWER, timeout=WAIT_MS)
    wait_log(overlay, "e.kind === 'scheduled' && e.turn === a.turn", {"turn": turn})
    overlay_shot(overlay, artifacts, "overlay-viewer-turn")

    # The streamer's page: the viewer turn in the transcript under the viewer's name, the state shown.
    viewer_entry = page.locator(f"[data-testid=transcript] [data-role=user][data-turn='{turn}']")
    expect(viewer_entry).to_have_attribute("data-viewers", "1", timeout=WAIT_MS)
    expect(viewer_entry.locator(".who")).to_have_text("Mika")
    expect(viewer_entry.get_by_test_id("viewer-line")).to_have_text(f"Mika {VIEWER_TEXT}")
    expect(page.locator(f"[data-testid=transcript] [data-role=bot][data-turn='{turn}'] .bubble")).to_have_text(
        VIEWER_ANSWER, timeout=WAIT_MS
    )
    expect(page.get_by_test_id("caption-viewers")).to_contain_text("Mika")
    bridge.until("end", turn=turn)
    expect(page.get_by_test_id("room-state")).to_have_attribute("data-state", "listening", timeout=WAIT_MS)
    shot(page, artifacts, "desktop-room-panel")

    # The OBS URL the panel copies: this room, this login.
    page.get_by_test_id("copy-overlay").click()
    expect(page.get_by_test_id("copy-overlay")).to_have_text("Copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == f"{astrbot.base_url}/live/overlay?room={room}&token={token}", copied

    # Audio off on this page only: set_audio goes out and the server confirms it.
    page.get_by_test_id("room-audio-toggle").locator("input").click()
    sent = wait_log(page, "e.kind === 'sent' && e.t === 'set_audio'")
    assert sent["ok"] is True, sent
    wait_log(page, "e.kind === 'frame' && e.t === 'configured'")
    assert page.evaluate("window.__liveTest.snapshot().roomAudio") is False
    # The streamer's microphone went out in 60 ms frames: 1920 bytes of PCM16 at 16 kHz each.
    frames, sent_bytes = page.evaluate("[window.__liveTest.audioFramesSent, window.__liveTest.audioBytesSent]")
    assert frames > 10 and sent_bytes == frames * 1920, (frames, sent_bytes)
    assert not page.errors, page.errors  # type: ignore[attr-defined]
    assert not overlay.errors, overlay.errors  # type: ignore[attr-defined]
