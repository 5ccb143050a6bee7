"""Pause-on-speech (`pause_play` clients), on fake ports and a fake clock, no AstrBot.

Speech over the answer pauses it; a backchannel, a cough or the character's own echo resumes
it whole; a meant interruption (words, or a long utterance) cuts it, keeps what played up to
the pause, and becomes the next turn, transcribed once. The fake synthesizer voices 10 ms per
character: FIRST lasts 270 ms, SECOND 300 ms.
"""

import asyncio

from live.audio.vad import SpeechConfirmed, SpeechDiscarded, SpeechEnded, SpeechStarted
from live.config import LiveSettings
from live.engine.barge_in import spoken_words, verdict
from live.engine.events import (
    AppendAudio,
    EndSpeaking,
    NothingHeard,
    PlaybackPaused,
    PlaybackResumed,
    PlaybackStopped,
    SendText,
    SentenceAudio,
    StartSpeaking,
    TurnEnded,
    TurnMetrics,
    UserTranscribed,
)
from tests.harness.fake_ports import Harness, harness, until  # noqa: F401 (a fixture)

FIRST = "The weather is sunny today."
SECOND = "Tomorrow it will rain heavily."
UTTERANCE = bytes(2 * 16000 // 2)  # 500 ms of PCM16 16 kHz


async def answering(h: Harness, *deltas: str, sentences: int = 0):
    h.session.handle(SendText("what's the weather"))
    run = await h.agent.started()
    run.say(*deltas)
    if sentences:
        await h.until(SentenceAudio, sentences)
    return h.of(UserTranscribed)[-1].turn_id, run


def speak(h: Harness, transcript: str, *, ms: int = 500) -> None:
    """Server VAD hears the user start, then an utterance of `ms` that transcribes as `transcript`."""
    h.transcriber.text = transcript
    h.session._on_vad(SpeechStarted(at_ms=0))
    h.clock.advance(ms)
    h.session._on_vad(SpeechEnded(pcm=bytes(32 * ms), duration_ms=ms, at_ms=ms, forced=False, silence_ms=0))


def names(h: Harness, turn: str) -> list[str]:
    return [type(e).__name__ for e in h.events if getattr(e, "turn_id", None) == turn]


async def test_a_backchannel_pauses_the_answer_then_resumes_it_whole(harness):
    h = harness(pause_play=True)
    turn, run = await answering(h, FIRST + " ", SECOND + " ", sentences=2)
    h.clock.advance(100)
    h.session._on_vad(SpeechStarted(at_ms=0))
    assert h.of(PlaybackPaused) == [PlaybackPaused(turn)] and not run.stopped
    h.session._on_vad(SpeechConfirmed(at_ms=300, speech_ms=300))  # what cuts without pause_play
    assert h.of(PlaybackStopped) == [] and not run.stopped
    h.transcriber.text = "Mm-hmm."
    h.clock.advance(500)
    h.session._on_vad(SpeechEnded(pcm=UTTERANCE, duration_ms=500, at_ms=600, forced=False, silence_ms=0))
    notice = (await h.until(NothingHeard))[0]
    assert notice.reason == "backchannel" and notice.turn_id != turn
    assert h.of(PlaybackResumed) == [PlaybackResumed(turn)]
    assert h.transcriber.calls == 1 and len(h.of(UserTranscribed)) == 1  # nothing of "mm-hmm" is a turn
    run.end()
    end = (await h.until(TurnEnded))[0]
    assert end == TurnEnded(turn, interrupted=False, text=FIRST + " " + SECOND + " ")
    assert h.of(PlaybackStopped) == [] and run.kept == []  # history keeps the whole answer
    assert h.session.state == "listening"


async def test_the_played_estimate_stops_while_paused(harness):
    h = harness(pause_play=True)
    turn, run = await answering(h, FIRST + " ", SECOND + " ", sentences=2)
    t = h.session._turn
    h.clock.advance(100)
    h.session._on_vad(SpeechStarted(at_ms=0))
    h.clock.advance(5000)
    assert t.estimated_played_ms() == 100 and h.session.playback_remaining_s() == 0.47
    speak(h, "yeah")
    await h.until(PlaybackResumed)
    h.clock.advance(50)
    assert t.estimated_played_ms() == 150


async def test_meant_words_cut_at_the_pause_and_become_the_next_turn_transcribed_once(harness):
    h = harness(pause_play=True)
    turn, run = await answering(h, FIRST + " ", SECOND + " ", sentences=2)
    h.clock.advance(270 + 150)  # the first sentence and "Tomorrow it" played
    h.session._on_vad(SpeechStarted(at_ms=0))
    h.clock.advance(2000)  # paused: none of this plays
    h.transcriber.text = "wait, what about Sunday?"
    h.session._on_vad(SpeechEnded(pcm=UTTERANCE, duration_ms=500, at_ms=600, forced=False, silence_ms=0))
    users = await h.until(UserTranscribed, 2)
    assert users[1].text == "wait, what about Sunday?" and h.transcriber.calls == 1
    assert run.stopped and h.of(PlaybackStopped) == [PlaybackStopped(turn)]
    assert h.of(TurnEnded, turn) == [TurnEnded(turn, interrupted=True, text="", heard=FIRST + " Tomorrow it")]
    assert names(h, turn)[-3:] == ["PlaybackPaused", "PlaybackStopped", "TurnEnded"]
    await until(lambda: run.kept == [FIRST + " Tomorrow it"])
    nxt = await h.agent.started(2)
    assert nxt.text == "wait, what about Sunday?"
    nxt.say("On Sunday it rains.")
    nxt.end()
    metrics = (await h.until(TurnMetrics))[-1]
    assert metrics.turn_id == users[1].turn_id and metrics.extra["input"] == "voice"
    assert metrics.timeline["speech_end"] == 0 and "stt_done" in metrics.timeline and "stt_ms" in metrics.extra
    assert h.of(NothingHeard) == [] and h.of(PlaybackResumed) == []


async def test_long_speech_cuts_at_once_without_waiting_for_its_end(harness):
    h = harness(LiveSettings(barge_in_meant_ms=1200), pause_play=True)
    turn, run = await answering(h, FIRST + " ", SECOND + " ", sentences=2)
    h.clock.advance(120)
    h.session._on_vad(SpeechStarted(at_ms=0))
    h.clock.advance(1500)
    h.session._on_vad(SpeechConfirmed(at_ms=1199, speech_ms=1199))
    assert h.of(PlaybackStopped) == []
    h.session._on_vad(SpeechConfirmed(at_ms=1200, speech_ms=1200))
    assert h.of(PlaybackStopped) == [PlaybackStopped(turn)] and run.stopped
    assert h.of(TurnEnded, turn)[0].heard == "The weather"  # 120 ms played before the pause
    h.transcriber.text = "stop"  # one word: the utterance is an ordinary next turn now, not judged
    h.session._on_vad(SpeechEnded(pcm=UTTERANCE, duration_ms=1600, at_ms=1600, forced=False, silence_ms=0))
    users = await h.until(UserTranscribed, 2)
    assert users[1].text == "stop" and h.of(PlaybackResumed) == []


async def test_a_turn_that_ends_while_paused_stays_paused_until_the_verdict(harness):
    h = harness(pause_play=True)
    turn, run = await answering(h, FIRST + " ", SECOND + " ", sentences=2)
    h.clock.advance(120)
    h.session._on_vad(SpeechStarted(at_ms=0))
    run.end()
    await h.until(TurnEnded)  # the answer is written: its end goes out, the playback still holds
    t = h.session._turn
    assert t.paused and not t.running and not h.session.busy
    h.clock.advance(400)
    h.transcriber.text = "hold on, go back"
    h.session._on_vad(SpeechEnded(pcm=UTTERANCE, duration_ms=400, at_ms=400, forced=False, silence_ms=0))
    await h.until(UserTranscribed, 2)
    assert h.of(TurnEnded, turn) == [
        TurnEnded(turn, interrupted=False, text=FIRST + " " + SECOND + " "),
        TurnEnded(turn, interrupted=True, text="", heard="The weather"),
    ]
    await until(lambda: run.kept == ["The weather"])


async def test_a_finished_answer_resumes_to_done_and_can_pause_again(harness):
    h = harness(pause_play=True)
    turn, run = await answering(h, FIRST + " ", SECOND + " ", sentences=2)
    run.end()
    await h.until(TurnEnded)
    h.clock.advance(100)
    speak(h, "okay")
    await h.until(PlaybackResumed)
    t = h.session._turn
    assert not t.paused and t.settled  # DONE again
    h.clock.advance(100)
    speak(h, "嗯嗯")
    await h.until(PlaybackResumed, 2)
    assert [n.reason for n in h.of(NothingHeard)] == ["backchannel", "backchannel"]
    h.clock.advance(100)
    assert t.estimated_played_ms() == 300
    h.clock.advance(300)
    h.session._on_vad(SpeechStarted(at_ms=0))  # everything played: nothing left to pause
    assert len(h.of(PlaybackPaused)) == 2


async def test_several_pauses_each_hold_the_clock_and_the_cut_keeps_what_played(harness):
    h = harness(pause_play=True)
    turn, run = await answering(h, FIRST + " ", SECOND + " ", sentences=2)
    for played, said in ((100, "yeah"), (100, "right"), (70, "对")):
        h.clock.advance(played)
        speak(h, said, ms=700)
        await until(lambda n=len(h.of(PlaybackResumed)): len(h.of(PlaybackResumed)) == n + 1)
    assert len(h.of(PlaybackPaused)) == 3 and not run.stopped
    h.clock.advance(150)  # 270 + 150 ms played in all, with 2.1 s of pauses between
    speak(h, "no no, tell me about Monday")
    await h.until(UserTranscribed, 2)
    assert h.of(TurnEnded, turn)[0].heard == FIRST + " Tomorrow it"


async def test_a_cough_the_vad_discards_resumes_with_a_notice(harness):
    h = harness(pause_play=True)
    turn, run = await answering(h, FIRST + " ", sentences=1)
    h.session._on_vad(SpeechStarted(at_ms=0))
    h.session._on_vad(SpeechDiscarded(at_ms=120, speech_ms=120))
    assert [n.reason for n in h.of(NothingHeard)] == ["noise"]
    assert h.of(PlaybackResumed) == [PlaybackResumed(turn)] and h.transcriber.calls == 0


async def test_an_empty_transcript_resumes_with_a_notice(harness):
    h = harness(pause_play=True)
    turn, run = await answering(h, FIRST + " ", sentences=1)
    speak(h, "(coughs)")
    await h.until(PlaybackResumed)
    assert [n.reason for n in h.of(NothingHeard)] == ["empty_transcript"]


async def test_the_characters_own_echo_resumes_with_an_echo_notice(harness):
    h = harness(pause_play=True)
    turn, run = await answering(h, FIRST + " ", SECOND + " ", sentences=2)
    h.clock.advance(100)
    speak(h, "the weather is sunny today")  # the microphone heard the speaker
    await h.until(PlaybackResumed)
    assert [n.reason for n in h.of(NothingHeard)] == ["echo"] and not run.stopped


async def test_speaking_again_before_the_verdict_keeps_the_pause_for_the_next_utterance(harness):
    h = harness(pause_play=True)
    turn, run = await answering(h, FIRST + " ", sentences=1)
    h.transcriber.gate = asyncio.Event()
    speak(h, "mm-hmm")
    await until(lambda: h.transcriber.calls == 1)
    h.session._on_vad(SpeechStarted(at_ms=900))  # the user goes on before "mm-hmm" is judged
    h.transcriber.gate.set()
    await h.until(NothingHeard)
    assert h.of(PlaybackResumed) == [] and h.session._turn.paused
    h.clock.advance(300)
    h.session._on_vad(SpeechEnded(pcm=UTTERANCE, duration_ms=300, at_ms=1200, forced=False, silence_ms=0))
    await h.until(PlaybackResumed)  # judged "mm-hmm" again (the fake's transcript)
    assert len(h.of(PlaybackPaused)) == 1 and h.transcriber.calls == 2


async def test_client_delimited_speech_pauses_and_long_audio_cuts(harness):
    h = harness(LiveSettings(barge_in_meant_ms=1200), pause_play=True)
    turn, run = await answering(h, FIRST + " ", sentences=1)
    h.session.handle(StartSpeaking("a"))
    assert h.of(PlaybackPaused) == [PlaybackPaused(turn)]
    h.session.handle(AppendAudio(bytes(32 * 300)))
    h.transcriber.text = "yeah"
    h.session.handle(EndSpeaking("a"))
    await h.until(PlaybackResumed)
    h.session.handle(StartSpeaking("b"))
    for _ in range(5):
        h.session.handle(AppendAudio(bytes(32 * 250)))  # 1250 ms: meant before it ends
    assert h.of(PlaybackStopped) == [PlaybackStopped(turn)] and run.stopped


async def test_without_pause_play_speech_cuts_as_before(harness):
    h = harness()
    turn, run = await answering(h, FIRST + " ", sentences=1)
    h.session._on_vad(SpeechStarted(at_ms=0))
    assert h.of(PlaybackPaused) == [] and not run.stopped
    h.session._on_vad(SpeechConfirmed(at_ms=300, speech_ms=300))
    assert h.of(PlaybackStopped) == [PlaybackStopped(turn)] and run.stopped
    h.transcriber.text = "mm-hmm"
    h.session._on_vad(SpeechEnded(pcm=UTTERANCE, duration_ms=500, at_ms=600, forced=False, silence_ms=0))
    users = await h.until(UserTranscribed, 2)
    assert users[1].text == "mm-hmm"  # answered as a question, as before


async def test_text_and_interrupt_still_cut_a_paused_answer(harness):
    h = harness(pause_play=True)
    turn, run = await answering(h, FIRST + " ", sentences=1)
    h.session._on_vad(SpeechStarted(at_ms=0))
    h.session.handle(SendText("something else"))
    assert h.of(PlaybackStopped) == [PlaybackStopped(turn)] and run.stopped


async def test_close_while_judging_leaves_no_task(harness):
    h = harness(pause_play=True)
    await answering(h, FIRST + " ", sentences=1)
    h.transcriber.gate = asyncio.Event()
    speak(h, "mm-hmm")
    await until(lambda: h.transcriber.calls == 1)
    await h.session.close()
    assert not {t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("live-verdict")}


async def test_echo_is_possible_only_while_audio_played_not_while_paused(harness):
    h = harness(pause_play=True)
    turn, run = await answering(h, FIRST + " ", SECOND + " ", sentences=2)
    t = h.session._turn
    start = h.clock.now
    h.clock.advance(100)
    h.session._on_vad(SpeechStarted(at_ms=0))
    paused_at = h.clock.now
    h.clock.advance(3000)
    assert t.played_during(start, start + 0.05)
    assert t.played_during(paused_at + 0.4, paused_at + 0.45)  # the tail: still in the room
    assert not t.played_during(paused_at + 1.0, paused_at + 2.0)  # paused: nothing played
    speak(h, "uh-huh", ms=10)
    await h.until(PlaybackResumed)
    resumed_at = h.clock.now
    h.clock.advance(10)
    assert t.played_during(resumed_at + 0.001, resumed_at + 0.002)


def test_verdicts():
    assert spoken_words("[cough] (laughs) *sighs* ♪") == []
    assert spoken_words("好，停一下") == ["好", "停", "一", "下"]
    assert verdict("Mm-hmm.", 1) == "backchannel" and verdict("对对", 1) == "backchannel"
    assert verdict("", 1) == verdict("[COUGHING]", 1) == "empty_transcript"
    assert verdict("Stop!", 1) == "meant" and verdict("Stop!", 2) == "backchannel"
    assert verdict("等一下", 2) == "meant" and verdict("yeah but wait", 1) == "meant"


def test_the_endpointer_confirms_again_at_the_meant_length():
    from tests.unit.test_vad import scripted_run  # 10 ms frames whose speech probability the test scripts

    events = scripted_run([0.0] * 10 + [0.9] * 150 + [0.0] * 60, confirm_ms=300, long_speech_ms=1200)
    confirmed = [e.speech_ms for e in events if isinstance(e, SpeechConfirmed)]
    assert confirmed == [300, 1200] and isinstance(events[-1], SpeechEnded)
    events = scripted_run([0.0] * 10 + [0.9] * 100 + [0.0] * 60, confirm_ms=300, long_speech_ms=1200)
    assert [e.speech_ms for e in events if isinstance(e, SpeechConfirmed)] == [300]  # 1 s: judged by its words
    events = scripted_run([0.0] * 10 + [0.9] * 150 + [0.0] * 60, confirm_ms=300)  # no mark: one confirm, as before
    assert [e.speech_ms for e in events if isinstance(e, SpeechConfirmed)] == [300]


async def test_a_room_waits_while_the_answer_is_paused():
    """The room's viewer queue must not start a viewer answer (which would cut it) while the
    streamer's speech over the answer is being judged."""
    from live.config import QueuePolicy
    from live.engine.ports import Conversation
    from live.engine.session import LiveSession
    from live.engine.speech import OutputFormat
    from live.rooms.room import Room, RoomKey
    from tests.harness.fake_ports import FakeAgent, FakeClock, FakeSpeech, FakeSynthesizer, FakeTranscriber

    clock, agent, transcriber = FakeClock(), FakeAgent(), FakeTranscriber("mm-hmm")
    events = []

    def session(sink):
        def both(event):
            events.append(event)
            sink(event)

        return LiveSession(
            session_id="s1", conversation=Conversation("alice", "c1"), settings=LiveSettings(), agent=agent,
            speech=FakeSpeech(transcriber, FakeSynthesizer()), sink=both, output=OutputFormat("wav", 0),
            clock=clock, pause_play=True,
        )  # fmt: skip

    room = Room(RoomKey("alice", "stage"), session, QueuePolicy())
    room.session.open()
    try:
        agent.script.append((FIRST + " ",))
        room.session.handle(SendText("hi"))
        await until(lambda: any(isinstance(e, TurnEnded) for e in events))
        transcriber.gate = asyncio.Event()
        room.session._on_vad(SpeechStarted(at_ms=0))
        room.session._on_vad(SpeechEnded(pcm=UTTERANCE, duration_ms=500, at_ms=500, forced=False, silence_ms=0))
        quiet = asyncio.create_task(room._until_quiet())
        await asyncio.sleep(1.5)  # past what the 270 ms answer plus the gap would take
        assert not quiet.done() and room.session.paused
        transcriber.gate.set()
        await until(lambda: any(isinstance(e, PlaybackResumed) for e in events))
        clock.advance(300)  # the rest of the answer plays out
        await asyncio.wait_for(quiet, 3)
    finally:
        await room.session.close()
