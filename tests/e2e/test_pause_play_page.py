"""The Live page pauses the answer for an "mm-hmm" and plays on, in a real browser.

The microphone WAV asks a question (real Piper speech), then says "Mm-hmm." while the long answer
plays. The page connects with `pause_play=1`: the server's `pause_play` stops playback where it
is, the backchannel notice shows, and `resume_play` plays the held audio on; nothing is cut.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.test_live_page import (
    PHONE,
    QUESTION,
    STORY,
    WAIT_MS,
    assert_no_page_errors,
    frame,
    log,
    log_summary,
    new_conversation,
    open_live,
    settle_drawer,
    shot,
    wait_log,
)

pytestmark = pytest.mark.browser

BACKCHANNEL = "Mm-hmm."


def assert_captions_apart(page) -> None:
    """The answer's caption stays below the user's quoted words, however long it grows."""
    boxes = page.evaluate(
        """() => {
            const user = document.querySelector('[data-testid=caption-user]')
            const bot = document.querySelector('[data-testid=caption-bot]')?.parentElement
            if (!user || !bot) return null
            return { user: user.getBoundingClientRect().bottom, bot: bot.getBoundingClientRect().top }
        }"""
    )
    assert boxes and boxes["bot"] >= boxes["user"] - 0.5, boxes


def test_the_page_pauses_for_mm_hmm_and_resumes(astrbot, fake, launch, mic, artifacts):
    fake.script_transcript(QUESTION)
    fake.script_transcript(BACKCHANNEL)
    fake.script_reply(STORY, ttft=0.05, interval=0.04)  # ~12 s of writing: still playing at the "mm-hmm"
    # As in the barge-in test: the answer starts playing about 1 s after the question, so the
    # "mm-hmm" comes about 3.5 s into its playback.
    wav = mic.make("backchannel", 1.0, QUESTION, 4.5, BACKCHANNEL, 4.0)
    page = open_live(launch(wav), astrbot, conversation=new_conversation("pause"))

    turn = frame(page, "user_msg")["turn"]
    wait_log(page, "e.kind === 'scheduled' && e.turn === a.turn", {"turn": turn})
    pause = frame(page, "pause_play", turn=turn)
    paused = wait_log(page, "e.kind === 'paused' && e.turn === a.turn", {"turn": turn})
    # paused for as long as the user speaks and the words are judged (about a second here)
    expect(page.get_by_text("Paused: listening to you")).to_be_visible(timeout=2000)
    expect(page.locator("[data-badge=paused]")).to_be_visible()
    assert_captions_apart(page)
    shot(page, artifacts, "desktop-paused")
    notice = frame(page, "transcript_empty")
    hint = page.get_by_test_id("caption-hint")
    expect(hint).to_have_attribute("data-reason", "backchannel", timeout=WAIT_MS)
    expect(hint).to_contain_text("mm-hmm")
    shot(page, artifacts, "desktop-pause-backchannel")
    resume = frame(page, "resume_play", turn=turn)
    resumed = wait_log(page, "e.kind === 'resumed'")
    end = frame(page, "end", turn=turn)

    entries = log(page)
    i = {name: entries.index(e) for name, e in
         (("pause", pause), ("paused", paused), ("notice", notice), ("resume", resume), ("resumed", resumed))}  # fmt: skip
    assert i["pause"] < i["paused"] < i["notice"] < i["resume"] < i["resumed"], log_summary(page)
    start = next(e for e in entries[: i["pause"]][::-1] if e["kind"] == "frame" and e["t"] == "vad")
    print(f"speech_start frame -> playback paused: {paused['at'] - start['at']:.0f} ms (page clock)")
    # While paused nothing of the turn started playing; after the resume its held audio plays on.
    between = entries[i["paused"] : i["resumed"]]
    assert not [e for e in between if e["kind"] == "scheduled" and e.get("turn") == turn], log_summary(page)
    wait_log(page, "e.kind === 'played' && e.turn === a.turn && e.at > a.after", {"turn": turn, "after": resumed["at"]})
    after = log(page)[i["resumed"] :]
    assert any(e["kind"] == "scheduled" and e.get("turn") == turn for e in after), log_summary(page)
    # Nothing was cut: no stop_play, the answer ended whole, the "mm-hmm" was no turn of its own.
    assert not [e for e in log(page) if e["kind"] == "frame" and e["t"] == "stop_play"], log_summary(page)
    assert end["turn"] == turn
    assert [e for e in log(page) if e["kind"] == "frame" and e["t"] == "user_msg"] == [
        e for e in log(page) if e["kind"] == "frame" and e["t"] == "user_msg" and e["turn"] == turn
    ]
    assert len(fake.transcriptions) == 2  # the question, and the "mm-hmm" judged once
    # The latency panel names the backend the server said it answers with.
    page.get_by_test_id("tab-latency").click()
    backend = page.get_by_test_id("latency-backend")
    expect(backend).to_have_attribute("data-backend", "cascade")
    expect(backend).to_contain_text("Cascaded: STT → LLM → TTS")
    shot(page, artifacts, "desktop-latency-backend")
    assert_no_page_errors(page)


def test_on_a_phone_in_chinese_the_pause_and_its_notice_read_plainly(astrbot, fake, launch, mic, artifacts):
    """The same pause on a phone, dark, in Chinese: the orb shows a pause sign and says it listens,
    the answer's caption stays below the question, and the "mm-hmm" notice takes the orb's line
    (in Chinese) while the captions stay; after the resume the pause sign is gone."""
    fake.script_transcript(QUESTION)
    fake.script_transcript(BACKCHANNEL)
    fake.script_reply(STORY, ttft=0.05, interval=0.04)
    wav = mic.make("backchannel-phone", 1.0, QUESTION, 4.5, BACKCHANNEL, 4.0)
    browser = launch(wav)
    conversation = new_conversation("pause-zh")
    page = open_live(browser, astrbot, conversation=conversation, viewport=PHONE, locale="zh-CN", color_scheme="dark")
    turn = frame(page, "user_msg")["turn"]
    frame(page, "pause_play", turn=turn)
    expect(page.get_by_test_id("orb-label")).to_have_text("已暂停：正在听你说", timeout=2000)
    expect(page.locator("[data-badge=paused]")).to_be_visible()
    assert_captions_apart(page)
    shot(page, artifacts, "phone-paused-zh-dark")
    hint = page.get_by_test_id("caption-hint")
    expect(hint).to_have_attribute("data-reason", "backchannel", timeout=WAIT_MS)
    expect(hint).to_have_text("只是“嗯”了一声：我接着说")
    expect(page.get_by_test_id("caption-user")).to_contain_text(QUESTION)  # the notice does not hide the captions
    frame(page, "resume_play", turn=turn)
    expect(page.locator("[data-badge=paused]")).to_have_count(0)
    shot(page, artifacts, "phone-pause-backchannel-zh-dark")
    page.get_by_test_id("panel-toggle").click()
    settle_drawer(page, open=True)
    page.get_by_test_id("tab-latency").click()
    expect(page.get_by_test_id("latency-backend")).to_contain_text("级联：语音识别 → 大模型 → 语音合成")
    shot(page, artifacts, "phone-latency-backend-zh-dark")
    assert_no_page_errors(page)
