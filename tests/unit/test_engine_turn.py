"""Barge-in on a turn, in each of its phases, and the heard text history keeps; on fake ports, no AstrBot.

The fake synthesizer voices 10 ms per character, so "The weather is sunny today." (27 characters)
lasts 270 ms and "Tomorrow it will rain heavily." (30) lasts 300 ms.
"""

import asyncio

from live.config import LiveSettings
from live.engine.events import (
    AgentTextDelta,
    Interrupt,
    PlaybackStopped,
    ReportPlayback,
    SendText,
    SentenceAudio,
    SubmitUtterance,
    TurnEnded,
    UserTranscribed,
)
from tests.harness.fake_ports import Harness, harness, until  # noqa: F401 (a fixture)

FIRST = "The weather is sunny today."
SECOND = "Tomorrow it will rain heavily."


async def answering(h: Harness, *deltas: str, sentences: int = 0):
    """A typed question; the agent says `deltas` and keeps going; returns (turn id, agent run)."""
    h.session.handle(SendText("what's the weather"))
    run = await h.agent.started()
    run.say(*deltas)
    if sentences:
        await h.until(SentenceAudio, sentences)
    turn = h.of(UserTranscribed)[-1].turn_id
    return turn, run


def cut_frames(h: Harness, turn: str) -> list[str]:
    """The names of the turn's events from its stop_play on."""
    events = [e for e in h.events if getattr(e, "turn_id", None) == turn]
    first = next(i for i, e in enumerate(events) if isinstance(e, PlaybackStopped))
    return [type(e).__name__ for e in events[first:]]


async def test_barge_in_during_stt_ends_the_turn_before_the_agent_starts(harness):
    h = harness()
    h.transcriber.gate = asyncio.Event()
    h.session.handle(SubmitUtterance(bytes(3200)))
    await until(lambda: h.transcriber.calls == 1)
    h.session.handle(Interrupt())
    turn = h.of(PlaybackStopped)[0].turn_id
    assert h.of(TurnEnded) == [TurnEnded(turn, interrupted=True, text="", heard="")]
    h.transcriber.gate.set()  # the transcript arrives after the cut: nothing of it goes out
    await asyncio.sleep(0.05)
    assert h.of(UserTranscribed) == [] and h.agent.runs == []
    assert h.states() == ["listening", "thinking", "listening"]


async def test_barge_in_while_the_agent_streams_before_any_audio_keeps_nothing(harness):
    h = harness()
    h.synthesizer.gate = asyncio.Event()  # no audio yet
    turn, run = await answering(h, FIRST + " ", SECOND[:10])
    await h.until(AgentTextDelta, 2)
    h.session.handle(Interrupt(turn))
    assert run.stopped, "the barge-in stops the agent at once"
    assert cut_frames(h, turn) == ["PlaybackStopped", "TurnEnded"]
    assert h.of(TurnEnded)[0].heard == ""
    await until(lambda: run.kept == [""])  # no assistant message in history
    h.synthesizer.gate.set()
    run.say("more text after the cut. ")
    await asyncio.sleep(0.05)
    assert cut_frames(h, turn) == ["PlaybackStopped", "TurnEnded"], "nothing of the turn follows its end"
    assert h.of(SentenceAudio) == [] and h.synthesizer.cancelled >= 1


async def test_barge_in_during_audio_keeps_what_the_client_played(harness):
    h = harness()
    turn, run = await answering(h, FIRST + " ", SECOND + " ", sentences=2)
    h.session.handle(Interrupt(turn, played_ms=270 + 150))
    end = h.of(TurnEnded)[0]
    assert (end.interrupted, end.text, end.heard) == (True, "", "The weather is sunny today. Tomorrow it")
    assert cut_frames(h, turn) == ["PlaybackStopped", "TurnEnded"]
    assert h.states()[-1] == "listening"
    await until(lambda: run.kept == ["The weather is sunny today. Tomorrow it"])


async def test_barge_in_after_all_audio_was_sent_cuts_what_the_client_still_plays(harness):
    h = harness()
    turn, run = await answering(h, FIRST + " ", SECOND)
    run.end()
    await h.until(TurnEnded)  # the turn is done; the client plays its 570 ms of audio
    h.clock.advance(300)
    h.session.handle(Interrupt())
    assert [e.turn_id for e in h.of(PlaybackStopped)] == [turn]
    assert h.of(TurnEnded) == [
        TurnEnded(turn, interrupted=False, text=FIRST + " " + SECOND),
        TurnEnded(turn, interrupted=True, text="", heard=FIRST),  # 300 ms: the first sentence, 30 ms of the second
    ]
    await until(lambda: run.kept == [FIRST])


async def test_barge_in_after_everything_played_cuts_nothing(harness):
    h = harness()
    turn, run = await answering(h, FIRST)
    run.end()
    await h.until(TurnEnded)
    h.clock.advance(271)
    h.session.handle(Interrupt())
    await asyncio.sleep(0.05)
    assert h.of(PlaybackStopped) == [] and run.kept == []
    assert h.session.playback_remaining_s() == 0.0


async def test_heard_text_estimated_from_the_clock_when_the_client_reports_nothing(harness):
    h = harness()
    turn, run = await answering(h, FIRST + " ", SECOND + " ", sentences=2)
    h.clock.advance(270 + 120)
    h.session.handle(Interrupt(turn))
    assert h.of(TurnEnded)[0].heard == "The weather is sunny today. Tomorrow it"
    await until(lambda: len(run.kept) == 1)


async def test_heard_text_waits_for_a_playback_report_when_the_client_sends_them(harness):
    h = harness(reports_playback=True)
    turn, run = await answering(h, FIRST + " ", SECOND + " ", sentences=2)
    h.session.handle(Interrupt(turn))
    assert h.of(PlaybackStopped) and h.of(TurnEnded) == []  # end waits for the report
    assert h.states()[-1] == "listening"  # the state does not
    h.session.handle(ReportPlayback(turn, 120))
    ends = await h.until(TurnEnded)
    assert ends[0].heard == "The weather"
    await until(lambda: run.kept == ["The weather"])


async def test_a_missing_playback_report_falls_back_to_the_estimate_at_the_cut(harness):
    h = harness(reports_playback=True)
    turn, run = await answering(h, FIRST + " ", SECOND + " ", sentences=2)
    h.clock.advance(280)
    h.session.handle(Interrupt(turn))
    h.clock.advance(5000)  # time passing while the server waits must not count as played
    ends = await h.until(TurnEnded, timeout=3)
    assert ends[0].heard == FIRST


async def test_heard_text_from_the_client_overrides_the_cut(harness):
    h = harness()
    turn, run = await answering(h, FIRST + " ", SECOND + " ", sentences=2)
    h.session.handle(Interrupt(turn, played_ms=10, heard_text="  The weather is sunny "))
    assert h.of(TurnEnded)[0].heard == "The weather is sunny"
    await until(lambda: run.kept == ["The weather is sunny"])


async def test_an_emotion_tag_cut_early_keeps_no_assistant_message(harness):
    """Found by replaying Open-LLM-VTuber's client: the tag is not speech, so a cut before
    the first spoken word keeps nothing (it kept "[joy]…")."""
    h = harness()
    turn, run = await answering(h, "[joy] Hello! The sky is blue today. ", sentences=1)
    h.clock.advance(30)  # half of "Hello!" (60 ms): "[joy] " of the written sentence, no whole spoken word
    h.session.handle(Interrupt(turn))
    assert h.of(TurnEnded)[0].heard == ""
    await until(lambda: run.kept == [""])


async def test_a_client_heard_text_of_tags_only_keeps_nothing(harness):
    h = harness()
    turn, run = await answering(h, "[joy] The sky is blue today. ", sentences=1)
    h.session.handle(Interrupt(turn, heard_text="[joy]"))
    await until(lambda: run.kept == [""])


async def test_a_double_interrupt_cuts_once_and_still_takes_the_report(harness):
    h = harness(reports_playback=True)
    turn, run = await answering(h, FIRST + " ", SECOND + " ", sentences=2)
    h.session.handle(Interrupt(turn))
    h.session.handle(Interrupt(turn, played_ms=270))
    h.session.handle(Interrupt())
    ends = await h.until(TurnEnded)
    await until(lambda: len(run.kept) == 1)
    assert len(h.of(PlaybackStopped)) == 1 and len(ends) == 1
    assert ends[0].heard == FIRST and run.kept == [FIRST]
    assert h.states().count("listening") == 2  # once at open, once at the cut
