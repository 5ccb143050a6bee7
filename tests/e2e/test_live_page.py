"""The Live page in a real browser, against a real AstrBot: speak, hear, interrupt, type.

Headless Chromium opens `<dashboard>/live/` with the dashboard token in localStorage. Its
microphone is a WAV of real (Piper) speech; the page streams it as PCM16 16 kHz to the server,
whose VAD finds the utterances. STT, LLM and TTS are the fake OpenAI-compatible server, scripted
per test. What the page received, sent and played is read from `window.__liveTest.log`
(frames, `scheduled` / `played` / `stopped` / `dropped` audio); what it shows, from the DOM.

Every wait is event-driven (the log or the DOM), with generous timeouts for noisy CI machines.
Screenshots go to test-artifacts/e2e/.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
import uuid
from typing import Any

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
WAIT_MS = 30_000  # one step of a turn (CI machines are noisy; a healthy run needs a few seconds)

QUESTION = "What is the weather like today?"
ANSWER = "It is sunny and warm today. A light breeze comes in the afternoon."
STOP = "Wait, stop please."
# Long enough that the reply is still streaming (and playing) when the user speaks over it.
STORY = " ".join(f"Sentence number {n} of a long and winding story." for n in range(1, 31))


# ------------------------------------------------------------------ helpers


def open_live(
    browser, astrbot, *, conversation: str, viewport: dict = DESKTOP, locale: str = "en-US", color_scheme: str = "light"
) -> Page:
    """The Live page, logged in through localStorage["token"], with its socket open."""
    ctx = browser.new_context(viewport=viewport, locale=locale, color_scheme=color_scheme)
    ctx.add_init_script(f"window.localStorage.setItem('token', {json.dumps(astrbot.jwt())})")
    page = ctx.new_page()
    page.errors = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))  # type: ignore[attr-defined]
    page.goto(f"{astrbot.base_url}/live/?conversation_id={conversation}")
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-status", "open", timeout=WAIT_MS)
    return page


def new_conversation(tag: str) -> str:
    """A conversation of its own per test: no history leaks between tests."""
    return f"e2e-{tag}-{uuid.uuid4().hex[:8]}"


def wait_log(page: Page, condition: str, args: dict | None = None, timeout: int = WAIT_MS) -> dict:
    """Wait for the first `__liveTest.log` entry `e` for which the JS `condition` holds (`a` = args)."""
    script = f"(a) => window.__liveTest.log.find((e) => {condition}) || null"
    try:
        return page.wait_for_function(script, arg=args or {}, timeout=timeout, polling=50).json_value()
    except PlaywrightError as exc:  # say what the page did see
        raise AssertionError(f"no log entry with {condition} {args or ''}; log: {log_summary(page)}") from exc


def frame(page: Page, t: str, timeout: int = WAIT_MS, **match: Any) -> dict:
    """Wait for a received frame of type `t` (optionally matching fields such as turn=, or not_turn=)."""
    cond = "e.kind === 'frame' && e.t === a.t"
    if "turn" in match:
        cond += " && e.turn === a.turn"
    if "not_turn" in match:
        cond += " && e.turn !== a.not_turn"
    return wait_log(page, cond, {"t": t, **match}, timeout)


def log(page: Page) -> list[dict]:
    return page.evaluate("window.__liveTest.log")


def log_summary(page: Page) -> str:
    try:
        entries = log(page)
    except PlaywrightError as exc:  # the page is gone
        return f"<unavailable: {exc}>"
    short = [
        {k: v for k, v in e.items() if k in ("kind", "at", "t", "turn", "seq", "reason", "playedMs", "durationMs")}
        for e in entries
        if not (e["kind"] == "sent" and e.get("t") == "ping")
    ]
    return json.dumps(short[-80:])


def wait_all_played(page: Page, turn: str) -> None:
    """Wait until the page has played every audio clip (`response` frame) of `turn` to its end."""
    page.wait_for_function(
        """(turn) => {
            const log = window.__liveTest.log
            const clips = log.filter((e) => e.kind === 'frame' && e.t === 'response' && e.turn === turn)
            const played = log.filter((e) => e.kind === 'played' && e.turn === turn)
            return clips.length > 0 && played.length === clips.length
        }""",
        arg=turn,
        timeout=WAIT_MS,
        polling=100,
    )


def bubble(page: Page, role: str, turn: str):
    return page.locator(f"[data-testid=transcript] [data-role={role}][data-turn='{turn}'] .bubble")


def shot(page: Page, artifacts, name: str) -> None:
    page.screenshot(path=str(artifacts / f"{name}.png"))


def settle_drawer(page: Page, *, open: bool) -> None:
    """Wait until the side panel has slid fully in (or out) and no CSS transition still runs."""
    page.wait_for_function(
        """(open) => {
            const drawer = document.querySelector('.side-drawer')
            const r = drawer ? drawer.getBoundingClientRect() : null
            const placed = open ? !!r && r.right <= window.innerWidth + 1 : !r || r.left >= window.innerWidth - 1
            return placed && document.getAnimations().every((a) => !(a instanceof CSSTransition))
        }""",
        arg=open,
        timeout=WAIT_MS,
        polling=50,
    )


def host_history(astrbot, conversation: str) -> list[dict]:
    """The host's own chat history of a conversation (the dashboard's API), oldest first."""
    req = urllib.request.Request(
        f"{astrbot.base_url}/api/v1/chat/sessions/{conversation}?page_size=100",
        headers={"Authorization": f"Bearer {astrbot.jwt()}"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        body = json.loads(resp.read())
    assert body["status"] == "ok", body
    return body["data"]["history"]


def plain_text(row: dict) -> str:
    return "".join(p.get("text", "") for p in row["content"].get("message", []) if p.get("type") == "plain")


def assert_no_page_errors(page: Page) -> None:
    assert not page.errors, page.errors  # type: ignore[attr-defined]


# ------------------------------------------------------------------ tests


def test_a_spoken_question_is_transcribed_answered_and_played(astrbot, fake, launch, mic, artifacts):
    """Mic WAV → server VAD → STT → LLM → TTS → the page shows both texts and plays the answer."""
    fake.script_transcript(QUESTION)
    fake.script_reply(ANSWER)
    wav = mic.make("question", 1.0, QUESTION, 2.0)
    page = open_live(launch(wav), astrbot, conversation=new_conversation("voice"))

    # The server's VAD heard the streamed microphone: speech, then the end of speech.
    frame(page, "vad")
    user = frame(page, "user_msg")
    turn = user["turn"]
    assert turn, user
    expect(bubble(page, "user", turn)).to_have_text(QUESTION, timeout=WAIT_MS)
    expect(bubble(page, "bot", turn)).to_have_text(ANSWER, timeout=WAIT_MS)
    expect(page.get_by_test_id("caption-user")).to_contain_text(QUESTION)

    # Audio of this turn reached the speakers: scheduled on the AudioContext, then played to its end.
    scheduled = wait_log(page, "e.kind === 'scheduled' && e.turn === a.turn", {"turn": turn})
    assert scheduled["durationMs"] > 300, scheduled
    shot(page, artifacts, "desktop-spoken-turn")
    page.set_viewport_size(PHONE)  # the same conversation on a phone: the transcript panel folds away
    expect(page.get_by_test_id("panel-toggle")).to_be_visible()
    settle_drawer(page, open=False)
    expect(page.get_by_test_id("caption-bot")).to_contain_text("breeze")
    shot(page, artifacts, "phone-spoken-turn")

    # Every audio clip of the turn then played to its end, in order, none stopped or dropped.
    end = frame(page, "end", turn=turn)
    try:
        wait_all_played(page, turn)
    except PlaywrightError as exc:
        raise AssertionError(f"the turn's audio did not all play: {log_summary(page)}") from exc
    entries = log(page)
    played = [e for e in entries if e["kind"] == "played" and e["turn"] == turn]
    assert [e["seq"] for e in played] == sorted(e["seq"] for e in played), played
    assert sum(e["durationMs"] for e in played) > 1500, played  # the whole answer, about 3 s of speech
    assert not any(e["kind"] in ("stopped", "dropped", "decode_error") for e in entries), log_summary(page)
    assert entries.index(user) < entries.index(end)

    # The microphone really streamed, and it was the speech of the WAV (about 2 s) that got transcribed.
    assert page.evaluate("window.__liveTest.audioFramesSent") > 50
    assert len(fake.transcriptions) == 1
    heard_s = fake.transcriptions[0]["bytes"] / 2 / 16000  # WAV upload of PCM16 16 kHz
    assert 0.8 * mic.seconds(mic.speech(QUESTION)) < heard_s < mic.seconds(mic.speech(QUESTION)) + 2.0, heard_s
    assert_no_page_errors(page)


def test_speaking_during_playback_interrupts_it(astrbot, fake, launch, mic, artifacts):
    """A second utterance over the playing answer: stop_play, the page stops that turn for good, a new turn."""
    fake.script_transcript(QUESTION)
    fake.script_transcript(STOP)
    fake.script_reply(STORY, ttft=0.05, interval=0.04)  # ~300 tokens, 12 s: still streaming at the barge-in
    fake.script_reply("Sure, I have stopped.")
    # The gap lets the answer start playing first: end-of-speech silence (0.5 s), STT, the first
    # sentence, TTS. That takes about 1 s here, so the user speaks over about 3.5 s of playback.
    wav = mic.make("barge-in", 1.0, QUESTION, 4.5, STOP, 2.0)
    conversation = new_conversation("barge")
    page = open_live(launch(wav), astrbot, conversation=conversation)

    first = frame(page, "user_msg")
    turn = first["turn"]
    wait_log(page, "e.kind === 'scheduled' && e.turn === a.turn", {"turn": turn})

    stop = frame(page, "stop_play", turn=turn)
    stopped = wait_log(page, "e.kind === 'stopped' && e.turn === a.turn", {"turn": turn})
    report = wait_log(page, "e.kind === 'sent' && e.t === 'playback_report' && e.turn === a.turn", {"turn": turn})
    second = frame(page, "user_msg", not_turn=turn)
    assert second["turn"]
    expect(bubble(page, "user", second["turn"])).to_have_text(STOP, timeout=WAIT_MS)
    frame(page, "end", turn=second["turn"])
    wait_log(page, "e.kind === 'played' && e.turn === a.turn", {"turn": second["turn"]})
    expect(bubble(page, "bot", second["turn"])).to_have_text("Sure, I have stopped.")
    # The interrupted answer is marked so in the transcript, and only part of the story was written.
    interrupted = page.locator(f"[data-testid=transcript] [data-role=bot][data-turn='{turn}']")
    expect(interrupted.locator(".v-chip")).to_have_text(re.compile("interrupted", re.IGNORECASE))
    expect(interrupted.locator(".unheard")).not_to_be_empty()  # what was never played is struck through
    shot(page, artifacts, "desktop-barge-in")
    # The heard part shown is the one the history keeps: the server's `end` says it (cut mark "…" aside).
    rows = host_history(astrbot, conversation)
    kept = [r for r in rows if r["content"]["type"] == "bot" and r["content"].get("interrupted")]
    assert len(kept) == 1, kept
    shown = interrupted.locator(".bubble > span").first.inner_text()
    assert shown.strip() and shown.strip() == plain_text(kept[0]).removesuffix("…").strip(), (shown, kept)

    entries = log(page)
    i_stop, i_stopped = entries.index(stop), entries.index(stopped)
    assert stopped["playedMs"] > 0, stopped  # some of the answer had really been heard
    assert i_stop < i_stopped < entries.index(report) < entries.index(second), log_summary(page)
    later = entries[i_stop + 1 :]
    # Nothing of the stopped turn plays after the stop: no clip scheduled or finished, and any
    # late audio is dropped. The server sends at most that turn's `end` after stop_play.
    assert not [e for e in later if e.get("turn") == turn and e["kind"] in ("scheduled", "played")], log_summary(page)
    late_frames = [e["t"] for e in later if e["kind"] == "frame" and e.get("turn") == turn]
    assert set(late_frames) <= {"end", "response"}, late_frames
    late_audio = sum(1 for t in late_frames if t == "response")
    dropped = [e for e in later if e["kind"] == "dropped" and e.get("turn") == turn]
    assert len(dropped) >= late_audio, log_summary(page)
    before = entries[:i_stop]
    assert any(e["kind"] == "scheduled" and e.get("turn") == turn for e in before)
    # The barge-in really stopped the model: the story was cut off.
    assert fake.streams[0].closed_early or fake.streams[0].tokens_sent < len(STORY.split()), fake.streams[0]
    assert_no_page_errors(page)


def test_typed_text_is_answered_on_a_phone(astrbot, fake, launch, mic, artifacts):
    """The text box on a phone-sized page: type, tap send, the reply appears as text and is spoken."""
    question = "Tell me a joke"
    reply = "Here is one: the skeleton stayed home because it had no body to go with."
    fake.script_reply(reply)
    wav = mic.make("silence", 0.5)  # a quiet room: nothing for the VAD
    page = open_live(launch(wav), astrbot, conversation=new_conversation("text"), viewport=PHONE)

    box = page.get_by_test_id("text-input").locator("input")
    box.fill(question)
    page.get_by_test_id("send-button").click()
    sent = wait_log(page, "e.kind === 'sent' && e.t === 'text_input'")
    assert sent["ok"] is True, sent
    expect(box).to_have_value("")
    user = frame(page, "user_msg")
    turn = user["turn"]
    expect(page.get_by_test_id("caption-user")).to_contain_text(question, timeout=WAIT_MS)
    expect(page.get_by_test_id("caption-bot")).to_have_text(reply, timeout=WAIT_MS)
    wait_log(page, "e.kind === 'scheduled' && e.turn === a.turn", {"turn": turn})
    shot(page, artifacts, "phone-text-turn")

    # The transcript panel, opened from the top bar, holds both messages.
    page.get_by_test_id("panel-toggle").click()
    settle_drawer(page, open=True)
    expect(bubble(page, "user", turn)).to_have_text(question, timeout=WAIT_MS)
    expect(bubble(page, "bot", turn)).to_have_text(reply, timeout=WAIT_MS)
    expect(bubble(page, "bot", turn)).to_be_in_viewport(ratio=1)
    frame(page, "end", turn=turn)
    shot(page, artifacts, "phone-text-turn-transcript")

    assert not fake.transcriptions  # typed, not spoken
    assert fake.streams and question in str(fake.streams[-1].messages[-1]["content"])
    assert_no_page_errors(page)


def test_earlier_turns_show_when_the_page_opens(astrbot, fake, launch, quiet_mic, artifacts):
    """A turn typed on one page is in the transcript of the next page opened on that conversation."""
    fake.script_reply("Paris is the capital of France.")
    conversation = new_conversation("history")
    browser = launch(quiet_mic)
    first = open_live(browser, astrbot, conversation=conversation)
    first.get_by_test_id("text-input").locator("input").fill("What is the capital of France?")
    first.get_by_test_id("send-button").click()
    turn = frame(first, "user_msg")["turn"]
    frame(first, "end", turn=turn)
    first.context.close()

    page = open_live(browser, astrbot, conversation=conversation)
    wait_log(page, "e.kind === 'history'")
    rows = page.locator("[data-testid=transcript] [data-role] .bubble")
    expect(rows).to_have_count(2, timeout=WAIT_MS)
    expect(rows.nth(0)).to_have_text("What is the capital of France?")
    expect(rows.nth(1)).to_have_text("Paris is the capital of France.")
    shot(page, artifacts, "desktop-history-on-open")
    assert_no_page_errors(page)


def test_esc_closes_a_menu_first_and_your_words_stay_readable_on_a_phone(astrbot, fake, launch, quiet_mic, artifacts):
    """During a long answer: Esc with the microphone menu open closes the menu and the answer goes on;
    the next Esc interrupts. Above the long answer the question stays fully visible and opaque."""
    fake.script_reply(STORY, ttft=0.05, interval=0.04)  # ~12 s of streaming
    question = "Please tell me a very long story about a fox"
    page = open_live(launch(quiet_mic), astrbot, conversation=new_conversation("esc"), viewport=PHONE)
    page.get_by_test_id("text-input").locator("input").fill(question)
    page.get_by_test_id("send-button").click()
    turn = frame(page, "user_msg")["turn"]
    page.wait_for_function(
        "() => (document.querySelector('[data-testid=caption-bot]')?.textContent || '').length > 200",
        timeout=WAIT_MS,
    )
    user = page.get_by_test_id("caption-user")
    expect(user).to_contain_text(question)
    expect(user).to_be_in_viewport(ratio=1)
    # Nothing fades it: no mask over it, and its text is drawn at most lightly muted.
    style = page.evaluate(
        r"""() => { const el = document.querySelector('[data-testid=caption-user]')
        let masked = false
        for (let n = el; n; n = n.parentElement) if ((getComputedStyle(n).maskImage || 'none') !== 'none') masked = true
        const alpha = Number((getComputedStyle(el).color.match(/rgba?\(([^)]+)\)/)[1].split(',')[3] ?? '1'))
        const box = el.getBoundingClientRect(), lines = el.parentElement.parentElement.getBoundingClientRect()
        return { masked, alpha, clipped: box.top < lines.top - 0.5 } }"""
    )
    assert not style["masked"] and not style["clipped"] and style["alpha"] >= 0.7, style
    shot(page, artifacts, "phone-long-answer-captions")

    page.get_by_test_id("device-picker").click()
    menu = page.locator(".v-menu .v-list")
    expect(menu).to_be_visible()
    page.keyboard.press("Escape")
    expect(menu).to_be_hidden()
    time.sleep(0.5)  # an interrupt would have been sent synchronously by now
    assert not [e for e in log(page) if e["kind"] == "sent" and e.get("t") == "interrupt"], log_summary(page)
    assert not [e for e in log(page) if e["kind"] == "frame" and e.get("t") == "end" and e.get("turn") == turn]

    page.keyboard.press("Escape")
    sent = wait_log(page, "e.kind === 'sent' && e.t === 'interrupt'")
    assert sent["turn"] == turn, sent
    frame(page, "end", turn=turn)
    assert_no_page_errors(page)


def test_embedded_in_webchat_esc_asks_the_host_to_close(astrbot, fake, launch, quiet_mic, artifacts):
    """`?embed=webchat` in a same-origin iframe: no live-room button, no second "Live Mode" title under
    the overlay's own bar, and Esc posts the close message to the parent (its own origin as the target)
    instead of interrupting."""
    host = open_live(launch(quiet_mic), astrbot, conversation=new_conversation("embed-host"))
    host.evaluate(
        """() => { window.__messages = []
        window.addEventListener('message', (e) => window.__messages.push({ data: e.data, origin: e.origin }))
        const frame = document.createElement('iframe')
        frame.src = '/live/?embed=webchat'
        frame.allow = 'microphone; autoplay'
        frame.style = 'position: fixed; inset: 0; width: 100%; height: 100%; border: 0; z-index: 9999'
        document.body.appendChild(frame) }"""
    )
    embedded = host.frame_locator("iframe")
    expect(embedded.get_by_test_id("connection-status")).to_have_attribute("data-status", "open", timeout=WAIT_MS)
    expect(embedded.get_by_test_id("room-join-button")).to_have_count(0)
    expect(embedded.get_by_test_id("top-bar-title")).to_have_count(0)
    expect(embedded.get_by_test_id("top-bar-user")).to_be_visible()
    embedded.get_by_test_id("text-input").locator("input").click()
    host.keyboard.press("Escape")
    host.wait_for_function("() => window.__messages.length > 0", timeout=WAIT_MS)
    assert host.evaluate("window.__messages") == [
        {"data": {"source": "astrbot-live", "type": "close"}, "origin": astrbot.base_url}
    ]
    shot(host, artifacts, "embedded-webchat")
    assert_no_page_errors(host)


def test_without_a_login_the_page_asks_for_one_in_the_users_language(astrbot, launch, quiet_mic, artifacts):
    """No token: the page's own login form, in Chinese for a Chinese browser; a wrong password is
    refused by the host's login API and said so in Chinese; nothing is connected meanwhile."""
    ctx = launch(quiet_mic).new_context(viewport=PHONE, locale="zh-CN", color_scheme="dark")
    page = ctx.new_page()
    page.errors = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))  # type: ignore[attr-defined]
    page.goto(f"{astrbot.base_url}/live/")
    card = page.get_by_test_id("login-card")
    expect(card).to_contain_text("登录 AstrBot", timeout=WAIT_MS)
    expect(page.get_by_test_id("login-dashboard-link")).to_have_attribute("href", f"{astrbot.base_url}/#/auth/login")
    page.get_by_test_id("login-username").locator("input").fill("astrbot")
    page.get_by_test_id("login-password").locator("input").fill("Not-the-password-1")
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("login-error")).to_have_text("用户名或密码错误。", timeout=WAIT_MS)
    assert page.evaluate("localStorage.getItem('token')") is None
    expect(page.get_by_test_id("connection-status")).not_to_have_attribute("data-status", "open")
    shot(page, artifacts, "phone-login-zh-dark")
    assert_no_page_errors(page)
