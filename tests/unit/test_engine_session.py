"""The session on fake ports, no AstrBot: agent state, timeouts, busy policies, barge-in by speech, close."""

import asyncio
from dataclasses import replace

from live.audio.vad import SpeechConfirmed
from live.config import LiveSettings
from live.engine import tasks
from live.engine.events import (
    BotReplied,
    EndSpeaking,
    ErrorRaised,
    Interrupt,
    NothingHeard,
    PlaybackStopped,
    SendText,
    SentenceAudio,
    SentenceStarted,
    StartSpeaking,
    AppendAudio,
    StateChanged,
    SubmitUtterance,
    TurnEnded,
    TurnMetrics,
    UserTranscribed,
)
from tests.harness.fake_ports import Harness, harness, until  # noqa: F401 (a fixture)


def live_tasks() -> set[str]:
    return {t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("live-")}


async def test_a_voice_turn_tells_each_state_once(harness):
    h = harness()
    h.agent.script.append(("Hello there. ", "It is a fine day. ", "Goodbye now."))
    h.session.handle(SubmitUtterance(bytes(3200)))
    await h.until(TurnMetrics)
    assert h.states() == ["listening", "thinking", "speaking", "listening"]  # three sentences, one "speaking"
    assert len(h.of(SentenceAudio)) == 3 and h.session.state == "listening"
    names = [type(e).__name__ for e in h.events if not isinstance(e, StateChanged)]
    assert names[-2:] == ["TurnEnded", "TurnMetrics"]
    assert h.of(TurnMetrics)[0].extra["backend"] == "cascade"


async def test_without_tts_the_answer_is_text_and_no_speaking_state(harness):
    h = harness(tts=False)
    h.agent.script.append(("Just text.",))
    h.session.handle(SendText("hi"))
    await h.until(TurnMetrics)
    assert [e.text for e in h.of(BotReplied)] == ["Just text."]
    assert h.states() == ["listening", "thinking", "listening"]


async def test_an_empty_transcript_goes_back_to_listening_without_the_agent(harness):
    h = harness()
    h.transcriber.text = "  "
    h.session.handle(SubmitUtterance(bytes(3200)))
    await h.until(NothingHeard)
    await asyncio.sleep(0.02)
    assert h.agent.runs == [] and h.states() == ["listening", "thinking", "listening"]


async def test_stt_timeout_is_an_stt_failed_error(harness):
    h = harness(LiveSettings(stt_timeout_s=0.05))
    h.transcriber.gate = asyncio.Event()  # never opens
    h.session.handle(SubmitUtterance(bytes(3200)))
    errors = await h.until(ErrorRaised)
    assert errors[0].code == "STT_FAILED" and "timed out" in errors[0].message
    await until(lambda: h.session.state == "listening" and not h.session.busy)
    assert h.agent.runs == []


async def test_tts_timeout_still_shows_the_sentence_and_ends_the_turn(harness):
    h = harness(LiveSettings(tts_timeout_s=0.05))
    h.synthesizer.gate = asyncio.Event()  # no audio ever
    h.agent.script.append(("A sentence that never gets a voice.",))
    h.session.handle(SendText("hi"))
    end = (await h.until(TurnEnded))[0]
    assert [e.code for e in h.of(ErrorRaised)] == ["TTS_FAILED"]
    assert [e.text for e in h.of(SentenceStarted)] == ["A sentence that never gets a voice."]
    assert end.interrupted is False and end.text == "A sentence that never gets a voice."
    assert h.of(BotReplied), "no audio: the answer goes out as text"


async def test_agent_idle_timeout_stops_the_agent_and_keeps_what_it_said(harness):
    h = harness(LiveSettings(agent_idle_timeout_s=0.1))
    h.session.handle(SendText("hi"))
    run = await h.agent.started()
    run.say("Let me think. ")
    ends = await h.until(TurnEnded)
    assert [e.code for e in h.of(ErrorRaised)] == ["AGENT_FAILED"] and run.stopped
    assert ends[0].text == "Let me think. " and ends[0].interrupted is False
    await until(lambda: run.kept == ["Let me think. "])


async def test_an_agent_error_notice_is_an_error_not_speech(harness):
    h = harness()
    h.session.handle(SendText("hi"))
    run = await h.agent.started()
    run.fail("provider down")
    run.end()
    await h.until(TurnEnded)
    assert [e.code for e in h.of(ErrorRaised)] == ["AGENT_FAILED"] and h.synthesizer.spoken == []


async def test_busy_policy_reject_refuses_new_text_while_a_turn_runs(harness):
    h = harness(LiveSettings(busy_policy="reject"))
    h.session.handle(SendText("first"))
    run = await h.agent.started()
    h.session.handle(SendText("second"))
    assert [e.code for e in h.of(ErrorRaised)] == ["PROCESSING_ERROR"]
    assert h.of(PlaybackStopped) == [] and not run.stopped
    run.say("Still answering.")
    run.end()
    ends = await h.until(TurnEnded)
    assert ends[0].interrupted is False and len(h.agent.runs) == 1


async def test_new_text_cuts_the_running_turn_and_the_next_sees_the_cut_history(harness):
    h = harness()
    h.session.handle(SendText("first"))
    first = await h.agent.started()
    first.say("The weather is sunny today. ")
    await h.until(SentenceAudio)
    h.clock.advance(120)
    h.session.handle(SendText("second"))
    second = await h.agent.started(2)
    assert first.kept == ["The weather"], "history was cut before the next question reached the agent"
    assert second.text == "second"
    assert [type(e).__name__ for e in h.events if getattr(e, "turn_id", "") == h.of(PlaybackStopped)[0].turn_id][
        -2:
    ] == ["PlaybackStopped", "TurnEnded"]


async def test_speech_barges_in_only_when_long_enough_and_enabled(harness):
    h = harness(LiveSettings(barge_in_min_speech_ms=300))
    h.session.handle(SendText("hi"))
    run = await h.agent.started()
    h.session._on_vad(SpeechConfirmed(at_ms=0, speech_ms=200))  # the VAD worker's callback
    assert h.of(PlaybackStopped) == [] and not run.stopped
    h.session._on_vad(SpeechConfirmed(at_ms=0, speech_ms=300))
    assert len(h.of(PlaybackStopped)) == 1 and run.stopped

    off = harness(LiveSettings(barge_in_enabled=False))
    off.session.handle(SendText("hi"))
    run = await off.agent.started()
    off.session.handle(StartSpeaking("s1"))
    assert off.of(PlaybackStopped) == [] and not run.stopped


async def test_start_speaking_cuts_the_answer_and_end_speaking_starts_the_next_turn(harness):
    h = harness()
    h.session.handle(SendText("hi"))
    run = await h.agent.started()
    h.session.handle(StartSpeaking("s1"))
    assert len(h.of(PlaybackStopped)) == 1 and run.stopped
    h.session.handle(AppendAudio(bytes(3200)))
    h.session.handle(EndSpeaking("s1"))
    await until(lambda: len(h.of(UserTranscribed)) == 2)
    assert h.of(UserTranscribed)[1].text == "hello there"


async def test_close_mid_turn_keeps_the_heard_part_tells_nothing_and_leaves_no_task(harness):
    before = live_tasks()
    h = harness()
    h.session.handle(SendText("hi"))
    run = await h.agent.started()
    run.say("The weather is sunny today. ", "Tomorrow")
    await h.until(SentenceAudio)
    h.clock.advance(120)
    await h.session.close()
    assert run.stopped and run.kept == ["The weather"]
    assert h.of(PlaybackStopped) == [] and h.of(TurnEnded) == []  # nobody is there to tell
    assert live_tasks() <= before
    h.session.handle(SendText("after close"))  # ignored
    assert len(h.agent.runs) == 1


async def test_waits_after_a_cancel_are_bounded(harness, monkeypatch):
    """A synthesizer that ignores its cancel holds neither the barge-in nor the close."""
    monkeypatch.setattr(tasks, "CANCEL_WAIT_S", 0.1)
    release = asyncio.Event()

    async def stubborn(text: str):
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue  # swallows the cancel, like a blocking SDK would
        if False:
            yield

    h = harness()
    h.synthesizer.stream = stubborn
    h.session.handle(SendText("hi"))
    run = await h.agent.started()
    run.say("The weather is sunny today. ")
    await until(lambda: any(t.startswith("live-tts-") for t in live_tasks()))
    h.session.handle(Interrupt())
    await until(lambda: run.kept == [""], timeout=3)
    await asyncio.wait_for(h.session.close(), 3)
    release.set()
    await until(lambda: not any(t.startswith("live-tts-") for t in live_tasks()))


async def test_a_turn_that_fails_ends_and_reports_it(harness):
    h = harness()

    def broken(conversation, text):
        raise RuntimeError("no agent")

    h.agent.start = broken
    h.session.handle(SendText("hi"))
    ends = await h.until(TurnEnded)
    assert [e.code for e in h.of(ErrorRaised)] == ["AGENT_FAILED"] and ends[0].interrupted is False
    assert h.session.state == "listening" and not h.session.busy
