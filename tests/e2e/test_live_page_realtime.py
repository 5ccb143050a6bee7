"""The Live page on the realtime backend, in a real browser against a real AstrBot.

The plugin's `backend` setting is `realtime` and its `realtime_url` points at the fake realtime
server (`tests/harness/fake_realtime.py`, real WebSockets, on a loop thread of its own), which
scripts the model: what it hears at each commit, the audio (a tone of a known length) and the
transcript it answers with, how fast. Headless Chromium's microphone is a WAV of Piper speech;
the server's VAD cuts the utterances, the realtime backend sends them to the model, and the page
gets the model's audio and captions. The cascade (fake STT, LLM, TTS) answers nothing here; its
STT only judges speech over a paused answer, as on the cascaded backend.

Every wait is event-driven (the page's `window.__liveTest` log, the DOM, the fake's records).
Screenshots go to test-artifacts/e2e/.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from dataclasses import replace

import pytest
from playwright.sync_api import expect

from live.config import RealtimeBackendSettings
from tests.e2e.test_live_page import (
    WAIT_MS,
    assert_no_page_errors,
    bubble,
    frame,
    host_history,
    log,
    log_summary,
    new_conversation,
    open_live,
    plain_text,
    shot,
    wait_all_played,
    wait_log,
)
from tests.harness.fake_realtime import MS_PER_CHAR, FakeRealtime, ScriptedResponse

pytestmark = pytest.mark.browser

KEY = "sk-realtime-e2e"
QUESTION = "What is the weather like today?"
ANSWER = "It is sunny and warm today. A light breeze comes in the afternoon."
STOP = "Wait, stop please."
STOPPED = "Okay, I have stopped."
# About 13 s of the model's audio (MS_PER_CHAR), streamed in real time: still streaming at the barge-in.
STORY = (
    "Once upon a time a lighthouse keeper lived alone on a rocky island. Every night she climbed the "
    "stairs and polished the great lamp until it shone. Ships passed safely all winter long."
)


@pytest.fixture
def realtime():
    """The fake realtime model on its own event loop thread (the page test itself is synchronous)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fake-realtime", daemon=True)
    thread.start()
    server = FakeRealtime(api_key=KEY)
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    yield server
    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


@pytest.fixture
def realtime_backend(astrbot, realtime):
    """The plugin answers new connections on the realtime backend, with the fake as its provider."""
    plugin = astrbot.plugin()
    saved = plugin.settings
    settings = RealtimeBackendSettings(
        url=realtime.url, api_key=KEY, model="fake-realtime", voice="alloy", transcription_model="whisper-1"
    )

    async def use():
        plugin.settings = replace(saved, backend="realtime", realtime=settings)

    async def restore():
        plugin.settings = saved

    astrbot.call(use)
    yield realtime
    astrbot.call(restore)


def wait_until(check, what: str, timeout: float = WAIT_MS / 1000):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return result


def shows_realtime_backend(page) -> None:
    """The hello says realtime, and the latency panel says so to the user."""
    frame(page, "hello")
    wait_until(lambda: page.evaluate("window.__liveTest.snapshot().backend"), "the hello's backend")
    assert page.evaluate("window.__liveTest.snapshot().backend") == "realtime"
    page.get_by_test_id("tab-latency").click()
    expect(page.get_by_test_id("latency-backend")).to_have_attribute("data-backend", "realtime", timeout=WAIT_MS)
    page.get_by_test_id("tab-transcript").click()


# ------------------------------------------------------------------ tests


def test_a_spoken_question_is_answered_by_the_realtime_model(
    astrbot, fake, realtime_backend, launch, mic, artifacts
):
    """Mic WAV -> server VAD -> the model (append, commit, response.create) -> its audio and captions."""
    realtime = realtime_backend
    realtime.hear(QUESTION)
    realtime.script(ScriptedResponse(ANSWER, first_delay=0.2, chunk_ms=100))
    chats, transcriptions = len(fake.chats), len(fake.transcriptions)
    wav = mic.make("rt-question", 1.0, QUESTION, 2.0)
    page = open_live(launch(wav), astrbot, conversation=new_conversation("rt-voice"))
    shows_realtime_backend(page)

    user = frame(page, "user_msg")
    turn = user["turn"]
    expect(bubble(page, "user", turn)).to_have_text(QUESTION, timeout=WAIT_MS)  # the model's transcription
    expect(bubble(page, "bot", turn)).to_have_text(ANSWER, timeout=WAIT_MS)
    expect(page.get_by_test_id("caption-user")).to_contain_text(QUESTION)
    expect(page.get_by_test_id("caption-bot")).to_contain_text("breeze")
    scheduled = wait_log(page, "e.kind === 'scheduled' && e.turn === a.turn", {"turn": turn})
    assert scheduled["durationMs"] > 0, scheduled
    shot(page, artifacts, "desktop-realtime-spoken-turn")

    # The model's audio all played, in order, none stopped or dropped: the whole answer's length.
    frame(page, "end", turn=turn)
    frame(page, "metrics", turn=turn)
    page.get_by_test_id("tab-latency").click()  # the turn's timeline, under the backend's name
    expect(page.get_by_test_id("latency-backend")).to_contain_text("Realtime model")
    shot(page, artifacts, "desktop-realtime-latency-panel")
    page.get_by_test_id("tab-transcript").click()
    wait_all_played(page, turn)
    entries = log(page)
    played = [e for e in entries if e["kind"] == "played" and e["turn"] == turn]
    assert [e["seq"] for e in played] == sorted(e["seq"] for e in played), played
    assert abs(sum(e["durationMs"] for e in played) - len(ANSWER) * MS_PER_CHAR) < 50, played
    assert not any(e["kind"] in ("stopped", "dropped", "decode_error") for e in entries), log_summary(page)

    # What reached the model: the microphone's utterance (about the spoken length, at 24 kHz), committed.
    kinds = realtime.received_types()
    assert kinds.index("input_audio_buffer.commit") < kinds.index("response.create"), kinds
    appended_s = sum(realtime.appended_bytes.values()) / 2 / 24000
    spoken_s = mic.seconds(mic.speech(QUESTION))
    assert 0.8 * spoken_s < appended_s < spoken_s + 2.0, (appended_s, spoken_s)
    assert realtime.session_updates[0]["audio"]["input"]["turn_detection"] is None  # our VAD ends turns
    # The cascade answered nothing: no STT request, no LLM request.
    assert (len(fake.chats), len(fake.transcriptions)) == (chats, transcriptions)
    assert page.evaluate("window.__liveTest.audioFramesSent") > 50
    assert_no_page_errors(page)


def test_speaking_over_the_realtime_answer_stops_it_and_the_history_keeps_what_was_heard(
    astrbot, fake, realtime_backend, launch, mic, artifacts
):
    """A second utterance over the streaming answer: stop_play, the model is cancelled and truncated at
    the heard ms, the next turn is answered; after a reload the history shows both exchanges."""
    realtime = realtime_backend
    realtime.hear(QUESTION, STOP)
    realtime.script(
        ScriptedResponse(STORY, first_delay=0.2, chunk_ms=100, pace=1.0),  # real time: still streaming
        ScriptedResponse(STOPPED, first_delay=0.2),
    )
    fake.script_transcript(STOP)  # a paused answer's utterance is judged by its words (the session's STT)
    # The gap lets the answer start playing (end-of-speech silence, then the model's 0.2 s): the user
    # speaks over about 3.5 s of it.
    wav = mic.make("rt-barge-in", 1.0, QUESTION, 4.5, STOP, 2.0)
    conversation = new_conversation("rt-barge")
    browser = launch(wav)
    page = open_live(browser, astrbot, conversation=conversation)
    frame(page, "hello")

    first = frame(page, "user_msg")
    turn = first["turn"]
    wait_log(page, "e.kind === 'scheduled' && e.turn === a.turn", {"turn": turn})
    stop = frame(page, "stop_play", turn=turn)
    stopped = wait_log(page, "e.kind === 'stopped' && e.turn === a.turn", {"turn": turn})
    second = frame(page, "user_msg", not_turn=turn)
    expect(bubble(page, "user", second["turn"])).to_have_text(STOP, timeout=WAIT_MS)
    expect(bubble(page, "bot", second["turn"])).to_have_text(STOPPED, timeout=WAIT_MS)
    frame(page, "end", turn=second["turn"])
    wait_log(page, "e.kind === 'played' && e.turn === a.turn", {"turn": second["turn"]})
    interrupted = page.locator(f"[data-testid=transcript] [data-role=bot][data-turn='{turn}']")
    expect(interrupted.locator(".v-chip")).to_have_text(re.compile("interrupted", re.IGNORECASE))
    expect(interrupted.locator(".unheard")).not_to_be_empty()  # what was never played is struck through
    shot(page, artifacts, "desktop-realtime-barge-in")

    # Playback of the cut answer stopped for good: nothing of it scheduled or played after stop_play.
    entries = log(page)
    i_stop = entries.index(stop)
    assert stopped["playedMs"] > 0, stopped
    assert entries.index(stopped) > i_stop
    later = entries[i_stop + 1 :]
    assert not [e for e in later if e.get("turn") == turn and e["kind"] in ("scheduled", "played")], log_summary(page)
    # The model was told: response.cancel while it still streamed, then a truncate at the heard ms.
    wait_until(lambda: realtime.truncations, "the truncation")
    cut = realtime.truncations[0]
    assert realtime.cancels and realtime.cancels[0].at < cut.at
    assert 0 < cut.audio_end_ms < cut.sent_audio_ms < len(STORY) * MS_PER_CHAR, cut

    # The host's history keeps the heard part of the story and the whole second exchange.
    def written():
        rows = host_history(astrbot, conversation)
        return rows if sum(1 for r in rows if r["content"]["type"] == "bot") >= 2 else None

    rows = wait_until(written, "both exchanges in the host's history")
    said = [(r["content"]["type"], plain_text(r)) for r in rows]
    heard = said[1][1].removesuffix("…").strip()
    assert said[0] == ("user", QUESTION) and said[2:] == [("user", STOP), ("bot", STOPPED)], said
    # The heard text is placed by the played ms over the transcript received so far, which runs ahead
    # of the audio here (the fake sends a word per 100 ms chunk): only a strict prefix is asserted.
    assert heard and STORY.startswith(heard) and len(heard) < len(STORY), said
    shown = interrupted.locator(".bubble > span").first.inner_text().strip()
    assert shown == heard, (shown, heard)
    assert_no_page_errors(page)

    # A reload shows the same exchanges from the history, on the realtime backend still.
    page.reload()
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-status", "open", timeout=WAIT_MS)
    wait_log(page, "e.kind === 'history'")
    rows = page.locator("[data-testid=transcript] [data-role] .bubble")
    expect(rows).to_have_count(4, timeout=WAIT_MS)
    expect(rows.nth(0)).to_have_text(QUESTION)
    expect(rows.nth(1)).to_contain_text(heard)
    expect(rows.nth(2)).to_have_text(STOP)
    expect(rows.nth(3)).to_have_text(STOPPED)
    shows_realtime_backend(page)
    shot(page, artifacts, "desktop-realtime-history-after-reload")
    assert_no_page_errors(page)
