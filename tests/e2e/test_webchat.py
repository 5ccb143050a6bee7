"""The Live Mode button in the host's own WebChat, in a real browser, against the real dashboard.

The dashboard is the compiled one inside the astrbot wheel, served by the booted AstrBot; the
plugin serves its index page with our one module script. The tests log in through the host's
login page, open WebChat, and use the button as a user would: the Live page opens over WebChat
in an iframe (its microphone is a WAV of Piper speech), and closing it returns to WebChat, which
then shows the spoken turn without a page reload. The fake OpenAI-compatible server scripts STT
and the LLM. Screenshots (light and dark) go to test-artifacts/e2e/.
"""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any

import pytest
from playwright.sync_api import Frame, Page, expect

from tests.e2e.test_live_page import WAIT_MS, log_summary, shot, wait_log

pytestmark = pytest.mark.browser

PLUGIN = "astrbot_plugin_live"
USERNAME = "astrbot"
PASSWORD = "WebChat-E2e-2468"  # meets the host's policy: upper, lower, digit
DESKTOP = {"width": 1280, "height": 800}
QUESTION = "What time does the museum open tomorrow?"
ANSWER = "The museum opens at nine in the morning. It closes at five."
SCRIPT_MARK = "data-astrbot-live"
OVERLAY = "#astrbot-live-mode-overlay"
# The dashboard's pages, visited to compare console errors with the button on and off.
PAGES = ["#/", "#/chat", "#/extension", "#/providers", "#/platforms", "#/config", "#/conversation", "#/about"]


# ------------------------------------------------------------------ helpers


@pytest.fixture(scope="module")
def dashboard_password(astrbot) -> str:
    """A known dashboard password, set the way the host's own first-run setup sets one."""

    async def set_password() -> None:
        from astrbot.dashboard.password_state import (
            set_dashboard_password_hashes,
            set_password_change_required,
            set_password_storage_upgraded,
        )

        config = astrbot.lifecycle.astrbot_config
        set_dashboard_password_hashes(config, PASSWORD)
        await set_password_storage_upgraded(astrbot.lifecycle.db, config, True)
        await set_password_change_required(astrbot.lifecycle.db, config, False)
        config.save_config()

    astrbot.call(set_password)
    return PASSWORD


def http(astrbot, method: str, path: str, body: dict | None = None) -> Any:
    request = urllib.request.Request(
        astrbot.base_url + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {astrbot.jwt()}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        raw = response.read().decode()
    return json.loads(raw) if raw.lstrip().startswith("{") else raw


def index_page(astrbot) -> str:
    with urllib.request.urlopen(astrbot.base_url + "/", timeout=30) as response:
        return response.read().decode()


def host_index_file(astrbot) -> str:
    """The index page exactly as the host ships it (the dist folder the dashboard serves)."""
    from pathlib import Path

    from astrbot.dashboard import server

    return (Path(server.APP._app.state.dashboard_static_folder) / "index.html").read_text(encoding="utf-8")


def open_dashboard(browser, astrbot, password: str, *, locale: str = "en-US", theme: str = "light", prepare=None) -> Page:
    """The host's login page, logged in through its form; the host UI in `locale`, `theme` colours.

    `prepare(page)` runs before the first request (to route the host's assets, say).
    """
    ctx = browser.new_context(viewport=DESKTOP, locale=locale, color_scheme=theme)
    ctx.add_init_script(f"window.localStorage.setItem('astrbot-locale', {json.dumps(locale)})")
    page = ctx.new_page()
    if prepare is not None:
        prepare(page)
    page.errors = []  # type: ignore[attr-defined]
    page.console_errors = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))  # type: ignore[attr-defined]
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))  # type: ignore[attr-defined]
    page.goto(f"{astrbot.base_url}/#/auth/login")
    page.locator("input").nth(0).fill(USERNAME)
    page.locator("input[type=password]").fill(password)
    page.keyboard.press("Enter")
    page.wait_for_function("() => !!localStorage.getItem('token') && !location.hash.startsWith('#/auth')", timeout=WAIT_MS)
    return page


def go(page: Page, hash_route: str) -> None:
    """A hash route of the already loaded dashboard (no page load)."""
    page.evaluate("(route) => { window.location.hash = route }", hash_route)


def live_button(page: Page, name: str = "Live Mode"):
    return page.locator(".input-area .input-right-actions").get_by_role("button", name=name, exact=True)


def live_frame(page: Page) -> Frame:
    """The Live page inside the overlay, once its socket is open."""
    iframe = page.locator(f"{OVERLAY} iframe")
    expect(iframe).to_be_visible(timeout=WAIT_MS)
    frame = iframe.element_handle().content_frame()
    assert frame is not None
    expect(frame.get_by_test_id("connection-status")).to_have_attribute("data-status", "open", timeout=WAIT_MS)
    return frame


def transcript(frame: Frame, role: str):
    return frame.locator(f"[data-testid=transcript] [data-role={role}] .bubble")


def mark_document(page: Page) -> None:
    """A marker that a page load would wipe: proves that closing does not reload the dashboard."""
    page.evaluate("window.__webchatE2eMark = 'same document'")


def assert_same_document(page: Page) -> None:
    assert page.evaluate("window.__webchatE2eMark") == "same document"


def errors_of_ours(page: Page) -> list[str]:
    return [e for e in page.errors + page.console_errors if "webchat-" in e or "/live/" in e]  # type: ignore[attr-defined]


def set_button(astrbot, enabled: bool) -> None:
    """Turns the setting on or off through the host's plugin-config API (the plugin reloads)."""
    config = http(astrbot, "GET", f"/api/v1/plugins/config?plugin_id={PLUGIN}")["data"]["config"]
    if config.get("webchat_button", True) != enabled:
        answer = http(astrbot, "PUT", "/api/v1/plugins/config", {"plugin_id": PLUGIN, "config": {**config, "webchat_button": enabled}})
        assert answer["status"] == "ok", answer
    page_has_script = lambda: SCRIPT_MARK in index_page(astrbot)  # noqa: E731
    wait_until(lambda: page_has_script() == enabled, f"the index page with the script = {enabled}")
    wait_until(lambda: http(astrbot, "GET", "/api/v1/live/health")["ok"], "Live Mode serving again")


def wait_until(check, what: str, timeout_s: float = 60) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass  # the plugin is reloading
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def normalized(errors: list[str]) -> set[str]:
    """Console errors without stack frames and asset hashes, to compare two visits of the same pages."""
    return {re.sub(r"-[A-Za-z0-9_]{8}\.js", ".js", e.splitlines()[0]) for e in errors}


# ------------------------------------------------------------------ tests


def test_live_mode_over_webchat_speaks_then_returns_to_the_conversation(
    astrbot, fake, launch, mic, artifacts, dashboard_password
):
    """New chat → Live Mode button → a spoken turn → Close → WebChat shows that turn, same document."""
    fake.script_transcript(QUESTION)
    fake.script_reply(ANSWER)
    page = open_dashboard(launch(mic.make("museum", 1.5, QUESTION, 2.5)), astrbot, dashboard_password)
    go(page, "#/chat")
    button = live_button(page)
    expect(button).to_be_visible(timeout=WAIT_MS)
    # It sits right before the host's microphone, and looks like it (the same classes).
    order = page.evaluate(
        """() => [...document.querySelector('.input-area .input-right-actions').children]
                  .filter((e) => e.tagName === 'BUTTON').map((e) => e.getAttribute('aria-label') || e.className)"""
    )
    assert order[0] == "Live Mode" and "record-btn" in order[1], order
    mic_classes = set(page.locator(".input-area button.record-btn").get_attribute("class").split())
    ours = set(button.get_attribute("class").split())
    assert mic_classes - {"record-btn"} <= ours, (mic_classes, ours)
    shot(page, artifacts, "webchat-button-light")
    mark_document(page)

    # No conversation was open: the button starts one through the host's chat API, WebChat shows it.
    button.click()
    expect(page).to_have_url(re.compile(r"#/chat/[0-9a-f-]{36}$"), timeout=WAIT_MS)
    conversation = page.url.rsplit("/", 1)[1]
    iframe = page.locator(f"{OVERLAY} iframe")
    expect(iframe).to_have_attribute("allow", "microphone; autoplay")
    expect(iframe).to_have_attribute("src", re.compile(rf"/live/\?conversation_id={conversation}&embed=webchat$"))
    expect(page.get_by_role("dialog", name="Live Mode")).to_be_visible()
    frame = live_frame(page)

    # The WAV microphone speaks inside the overlay; the answer comes back and plays.
    expect(transcript(frame, "user")).to_have_text([QUESTION], timeout=WAIT_MS)
    expect(transcript(frame, "bot")).to_have_text([ANSWER], timeout=WAIT_MS)
    user = wait_log(frame, "e.kind === 'frame' && e.t === 'user_msg'")
    wait_log(frame, "e.kind === 'scheduled' && e.turn === a.turn", {"turn": user["turn"]})
    wait_log(frame, "e.kind === 'frame' && e.t === 'end' && e.turn === a.turn", {"turn": user["turn"]})
    assert frame.evaluate("window.__liveTest.audioFramesSent") > 50, log_summary(frame)
    shot(page, artifacts, "webchat-live-overlay-light")

    # Close: the overlay goes, the same document shows the spoken turn in that conversation.
    page.get_by_role("button", name="Close", exact=True).click()
    expect(page.locator(OVERLAY)).to_have_count(0, timeout=WAIT_MS)
    expect(page).to_have_url(re.compile(rf"#/chat/{conversation}$"))
    messages = page.locator(".chat-main")
    expect(messages.get_by_text(QUESTION)).to_be_visible(timeout=WAIT_MS)
    expect(messages.get_by_text(ANSWER)).to_be_visible(timeout=WAIT_MS)
    expect(live_button(page)).to_be_visible()
    assert_same_document(page)
    shot(page, artifacts, "webchat-after-close-light")
    assert len(fake.transcriptions) == 1
    assert not page.errors, page.errors  # type: ignore[attr-defined]
    assert not errors_of_ours(page), errors_of_ours(page)


def test_the_live_link_opens_the_overlay_in_chinese_and_dark(astrbot, fake, launch, quiet_mic, artifacts, dashboard_password):
    """`/live` is sent with one Enter; its link opens the same overlay; Esc closes it; the host UI is Chinese."""
    page = open_dashboard(launch(quiet_mic), astrbot, dashboard_password, locale="zh-CN", theme="dark")
    with page.expect_response(lambda r: "/api/v1/commands" in r.url, timeout=WAIT_MS):
        go(page, "#/chat")  # WebChat loads the command list its suggestions come from
    button = live_button(page, "实时对话")
    expect(button).to_be_visible(timeout=WAIT_MS)
    expect(page.locator(".input-area button.record-btn")).to_have_class(re.compile("v-theme--PurpleThemeDark"))
    expect(button).to_have_class(re.compile("v-theme--PurpleThemeDark"))
    shot(page, artifacts, "webchat-button-dark")
    mark_document(page)

    # One Enter sends `/live`, although the host's command suggestion takes the first Enter.
    box = page.locator("textarea.chat-textarea")
    box.click()
    page.keyboard.type("/live")
    expect(page.locator(".command-suggestion-panel")).to_be_visible(timeout=WAIT_MS)
    page.keyboard.press("Enter")
    link = page.locator(".chat-main a[href^='/live/?conversation_id=']")
    expect(link).to_have_count(1, timeout=WAIT_MS)
    expect(box).to_have_value("")
    conversation = page.url.rsplit("/", 1)[1]
    assert link.get_attribute("href") == f"/live/?conversation_id={conversation}"

    # The link opens Live Mode over WebChat, bound to that conversation, instead of leaving WebChat.
    link.click()
    frame = live_frame(page)
    assert "embed=webchat" in frame.url and f"conversation_id={conversation}" in frame.url
    expect(page).to_have_url(re.compile(rf"#/chat/{conversation}$"))
    expect(page.get_by_role("button", name="关闭", exact=True)).to_be_visible()
    shot(page, artifacts, "webchat-live-overlay-dark")

    # Esc inside the Live page asks WebChat to close the overlay (a postMessage the script checks).
    frame.locator("body").press("Escape")
    expect(page.locator(OVERLAY)).to_have_count(0, timeout=WAIT_MS)
    # ... and Esc on the overlay itself closes it too.
    button.click()
    live_frame(page)
    page.get_by_role("button", name="关闭", exact=True).focus()
    page.keyboard.press("Escape")
    expect(page.locator(OVERLAY)).to_have_count(0, timeout=WAIT_MS)
    expect(page.locator(".chat-main").get_by_text("/live", exact=True)).to_be_visible(timeout=WAIT_MS)
    assert_same_document(page)
    shot(page, artifacts, "webchat-after-close-dark")
    assert not page.errors, page.errors  # type: ignore[attr-defined]
    assert not errors_of_ours(page), errors_of_ours(page)


def test_another_host_version_keeps_its_webchat_as_it_is(astrbot, fake, launch, quiet_mic, dashboard_password):
    """A WebChat whose input bar is built differently: no button, no console error, `/live` still works."""
    browser = launch(quiet_mic)

    def other_version(route) -> None:
        # The same host, but its chat input bar's markup and styles renamed, as a later release might.
        response = route.fetch()
        body = response.text().replace("input-right-actions", "composer-actions-v2")
        route.fulfill(response=response, body=body)

    page = open_dashboard(
        browser, astrbot, dashboard_password,
        prepare=lambda p: p.route(re.compile(r"/assets/useDragUpload-[^/]+\.(js|css)$"), other_version),
    )  # fmt: skip
    go(page, "#/chat")
    expect(page.locator(".composer-actions-v2 button.record-btn")).to_be_visible(timeout=WAIT_MS)
    assert SCRIPT_MARK in page.content()  # our script is on the page, and found nothing it knows
    page.wait_for_timeout(9000)  # past the script's 8 s of looking
    expect(page.locator(".astrbot-live-mode-btn")).to_have_count(0)
    page.locator("textarea.chat-textarea").fill("/live")
    page.locator(".input-area button.send-btn").click()
    expect(page.locator(".chat-main a[href^='/live/?conversation_id=']")).to_have_count(1, timeout=WAIT_MS)
    assert not page.errors, page.errors  # type: ignore[attr-defined]
    assert not errors_of_ours(page), errors_of_ours(page)


def test_setting_off_no_button_and_no_new_console_errors(astrbot, fake, launch, quiet_mic, dashboard_password):
    """Off: the host's index page byte for byte, no button, `/live` still answers. On: no new console errors."""
    host_index = host_index_file(astrbot)
    browser = launch(quiet_mic)

    def visit_pages(*, button: bool) -> list[str]:
        page = open_dashboard(browser, astrbot, dashboard_password)
        for route in PAGES:
            go(page, route)
            page.wait_for_load_state("networkidle")
            page.wait_for_timeout(500)
            if route == "#/chat":
                expect(page.locator(".input-area button.record-btn")).to_be_visible(timeout=WAIT_MS)
                expect(page.locator(".astrbot-live-mode-btn")).to_have_count(1 if button else 0, timeout=WAIT_MS)
        errors = page.errors + page.console_errors  # type: ignore[attr-defined]
        page.context.close()
        return errors

    try:
        set_button(astrbot, False)
        assert index_page(astrbot) == host_index
        errors_off = visit_pages(button=False)

        page = open_dashboard(browser, astrbot, dashboard_password)
        go(page, "#/chat")
        expect(page.locator(".input-area button.record-btn")).to_be_visible(timeout=WAIT_MS)
        page.wait_for_timeout(1000)
        expect(page.locator(".astrbot-live-mode-btn")).to_have_count(0)
        page.locator("textarea.chat-textarea").fill("/live")
        page.locator(".input-area button.send-btn").click()  # the host's own send (its Enter picks a suggestion)
        expect(page.locator(".chat-main a[href^='/live/?conversation_id=']")).to_have_count(1, timeout=WAIT_MS)
        page.context.close()
    finally:
        set_button(astrbot, True)

    errors_on = visit_pages(button=True)
    new = normalized(errors_on) - normalized(errors_off)
    assert not new, {"new with the button": sorted(new), "without": sorted(normalized(errors_off))}
