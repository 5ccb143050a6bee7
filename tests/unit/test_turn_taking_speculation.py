"""Speculative start: the session answers ahead of the end of turn, holds every output, and
releases it at commit or forgets it when the user goes on.

The same real VAD worker and endpointer as test_turn_taking.py, a fake end-of-turn model whose
scores the test scripts, and the engine's fake ports (transcriber, agent, synthesizer).
"""

import asyncio

from live.engine.events import (
    SendText,
    SentenceAudio,
    SessionStarted,
    SpeechDetected,
    StateChanged,
    TurnEnded,
    TurnMetrics,
    UserTranscribed,
)
from tests.harness.audio import silence_pcm, speech_like_pcm
from tests.harness.fake_ports import harness, until  # noqa: F401 (a fixture)
from tests.unit.test_turn_taking import SPEECH, FakeModel, servers, session_with, settings, speak  # noqa: F401

MORE = speech_like_pcm(0.8, seed=9)


def speculating(**fields):
    return settings(end_of_turn_speculation=True, **fields)


def client_events(h) -> list:
    """What the client was told, apart from the VAD's own notices."""
    return [e for e in h.events if not isinstance(e, SpeechDetected)]


async def test_a_sure_done_commits_the_answer_started_ahead(harness, servers):  # noqa: F811
    fake = FakeModel(0.99)
    h, _ = await session_with(harness, servers, lambda: fake, speculating())
    h.agent.script.append(("It is noon.",))
    await speak(h, silence_pcm(0.3) + SPEECH + silence_pcm(0.35))
    metrics = (await h.until(TurnMetrics))[0]
    (run,) = h.agent.runs
    assert run.speculative and run.committed and not run.discarded
    assert h.transcriber.calls == 1 and len(h.of(UserTranscribed)) == 1
    extra, timeline = metrics.extra, metrics.timeline
    assert extra["speculation"] == "answer" and extra["speculations_dropped"] == 0
    assert extra["eot_reason"] == "model_done" and extra["eot_confirmed_by"] == "score"
    # transcribed at the short pause, before the model's answer decided the end
    assert timeline["speculation_start"] <= timeline["stt_done"] <= timeline["eot_decided"]
    assert timeline["first_audio"] >= timeline["eot_decided"]  # the client got it at the commit at the earliest
    assert extra["speculation_saved_ms"] >= 0
    assert h.states() == ["listening", "thinking", "speaking", "listening"]


async def test_output_is_held_until_the_silence_confirms_a_probable_done(harness, servers):  # noqa: F811
    fake = FakeModel(0.8)  # done, but below the bar: wait for the unsure silence (1 s)
    h, _ = await session_with(harness, servers, lambda: fake, speculating())
    h.agent.script.append(("It is noon.",))
    h.transcriber.gate = asyncio.Event()
    await speak(h, silence_pcm(0.3) + SPEECH + silence_pcm(0.3))
    await until(lambda: h.transcriber.calls == 1)
    h.clock.advance(150)  # the transcription takes 150 ms, during the pause
    h.transcriber.gate.set()
    run = await h.agent.started()
    assert run.speculative and not run.committed
    await until(lambda: h.session._speculation is not None and h.session._speculation.task.done())
    assert [type(e) for e in client_events(h)] == [SessionStarted, StateChanged]  # what open() said, no more
    await speak(h, silence_pcm(0.8))  # 1100 ms: past the unsure silence
    metrics = (await h.until(TurnMetrics))[0]
    kinds = [type(e) for e in client_events(h)]
    assert kinds.index(UserTranscribed) < kinds.index(SentenceAudio) < kinds.index(TurnEnded) < kinds.index(TurnMetrics)
    assert h.states() == ["listening", "thinking", "speaking", "listening"]
    assert run.committed and metrics.extra["eot_confirmed_by"] == "silence"
    assert metrics.extra["speculation"] == "answer" and metrics.extra["speculation_saved_ms"] == 150
    assert metrics.timeline["first_audio"] == metrics.timeline["eot_decided"]  # released at the commit


async def test_finished_words_confirm_a_probable_done_as_soon_as_they_are_transcribed(harness, servers):  # noqa: F811
    fake = FakeModel(0.8)  # done, not sure: alone it would wait for the unsure silence (1 s)
    h, _ = await session_with(harness, servers, lambda: fake, speculating())
    h.agent.script.append(("It is noon.",))
    h.transcriber.text = "What time is it?"
    h.transcriber.gate = asyncio.Event()
    await speak(h, silence_pcm(0.3) + SPEECH + silence_pcm(0.3))
    await until(lambda: h.transcriber.calls == 1 and len(fake.batches) == 1)
    await asyncio.sleep(0.05)  # the score is in; the words are not
    assert h.agent.runs == [] and not h.of(UserTranscribed)  # waiting for the words, not for 1 s of silence
    h.transcriber.gate.set()
    metrics = (await h.until(TurnMetrics))[0]
    assert metrics.extra["eot_reason"] == "model_done" and metrics.extra["eot_confirmed_by"] == "text"
    assert metrics.extra["eot_text"] == "finished" and metrics.extra["eot_silence_ms"] < 1000
    assert [e.text for e in h.of(UserTranscribed)] == ["What time is it?"]


async def test_unfinished_words_hold_even_a_sure_done(harness, servers):  # noqa: F811
    fake = FakeModel(0.99)
    h, _ = await session_with(harness, servers, lambda: fake, speculating(end_of_turn_max_silence_ms=1500))
    h.agent.script.append(("Go on.",))
    h.transcriber.text = "I want to order, um,"
    await speak(h, silence_pcm(0.3) + SPEECH + silence_pcm(0.6))
    await until(lambda: h.transcriber.calls == 1 and len(fake.batches) == 1)
    await asyncio.sleep(0.05)
    assert not h.of(UserTranscribed)  # 600 ms of silence and not over: a filler is no end
    await speak(h, silence_pcm(0.6))
    metrics = (await h.until(TurnMetrics))[0]
    assert metrics.extra["eot_confirmed_by"] == "silence" and metrics.extra["eot_text"] == "unfinished"


async def test_speech_after_a_probable_done_discards_the_speculation_and_continues(harness, servers):  # noqa: F811
    fake = FakeModel(0.8, 0.99)
    h, _ = await session_with(harness, servers, lambda: fake, speculating())
    h.transcriber.text = "i need a table"  # words without a cue either way: the score decides
    await speak(h, silence_pcm(0.3) + SPEECH + silence_pcm(0.3))
    first = await h.agent.started()
    first.say("Sure, what do")  # the speculative answer is under way
    h.transcriber.text = "i need a table for two"
    await speak(h, MORE + silence_pcm(0.35))  # the user went on: one utterance
    second = await h.agent.started(2)
    second.say("Booked.")
    second.end()
    metrics = (await h.until(TurnMetrics))[0]
    await until(lambda: first.discarded)
    assert first.stopped and not first.committed and first.kept == []
    assert [e.text for e in h.of(UserTranscribed)] == ["i need a table for two"]
    assert second.text == "i need a table for two" and second.committed
    assert not any("what do" in getattr(e, "text", "") for e in h.events)  # nothing of the dropped answer
    assert metrics.extra["speculations_dropped"] == 1 and metrics.extra["eot_pauses_judged"] == 2
    assert [e.state for e in h.of(SpeechDetected)] == ["speech_start", "speech_end"]


async def test_a_not_done_pause_reuses_its_transcript_when_the_long_limit_ends_the_turn(harness, servers):  # noqa: F811
    fake = FakeModel(0.03)
    h, _ = await session_with(harness, servers, lambda: fake, speculating(end_of_turn_max_silence_ms=1200))
    h.agent.script.append(("Go on.",))
    await speak(h, silence_pcm(0.3) + SPEECH + silence_pcm(0.6))
    await until(lambda: h.transcriber.calls == 1)
    assert h.agent.runs == []  # "not done": the agent waits
    await speak(h, silence_pcm(0.7))
    metrics = (await h.until(TurnMetrics))[0]
    assert h.transcriber.calls == 1 and metrics.extra["eot_reason"] == "max_silence"
    assert metrics.extra["speculation"] == "transcript"


async def test_the_next_turn_waits_until_a_dropped_speculation_left_history(harness, servers):  # noqa: F811
    fake = FakeModel(0.8, 0.99)
    h, _ = await session_with(harness, servers, lambda: fake, speculating())
    await speak(h, silence_pcm(0.3) + SPEECH + silence_pcm(0.3))
    first = await h.agent.started()
    first.close_hangs = True  # the host is slow to end the stopped request
    await speak(h, MORE + silence_pcm(0.35))
    await asyncio.sleep(0.05)
    assert len(h.agent.runs) == 1  # the committed turn has not reached the agent yet
    first.finished.set()  # the host ends it: its exchange is removed, then the next turn goes on
    second = await h.agent.started(2)
    assert first.discarded and not second.speculative  # committed meanwhile: an ordinary run


async def test_no_speculation_over_an_answer_that_is_still_playing(harness, servers):  # noqa: F811
    fake = FakeModel(0.99, 0.97)  # the second pause is not answered ahead: a sure "done" ends it at once
    h, _ = await session_with(harness, servers, lambda: fake, speculating(barge_in_enabled=False))
    h.agent.script.append(("A long answer that is still playing when the user speaks again.",))
    await speak(h, silence_pcm(0.3) + SPEECH + silence_pcm(0.35))
    await h.until(TurnEnded)
    h.agent.script.append(("Second.",))
    await speak(h, SPEECH + silence_pcm(0.35))  # the fake clock stands still: the first answer still plays
    metrics = (await h.until(TurnMetrics, 2))[1]
    assert not h.agent.runs[1].speculative and metrics.extra["speculation"] is None
    assert metrics.extra["eot_confirmed_by"] == "score" and metrics.extra["eot_silence_ms"] < 500


async def test_typed_input_during_a_speculation_drops_it(harness, servers):  # noqa: F811
    fake = FakeModel(0.8)
    h, _ = await session_with(harness, servers, lambda: fake, speculating())
    await speak(h, silence_pcm(0.3) + SPEECH + silence_pcm(0.3))
    spoken = await h.agent.started()
    h.session.handle(SendText(text="never mind, what is the time?"))
    typed = await h.agent.started(2)
    typed.say("Noon.")
    typed.end()
    await h.until(TurnEnded)
    await until(lambda: spoken.discarded)
    assert typed.text == "never mind, what is the time?" and not typed.speculative
    assert [e.text for e in h.of(UserTranscribed)] == ["never mind, what is the time?"]


async def test_closing_the_session_drops_a_speculation(harness, servers):  # noqa: F811
    fake = FakeModel(0.8)
    h, _ = await session_with(harness, servers, lambda: fake, speculating())
    await speak(h, silence_pcm(0.3) + SPEECH + silence_pcm(0.3))
    run = await h.agent.started()
    await h.session.close()
    assert run.stopped and run.discarded and not run.committed
    assert h.of(UserTranscribed) == []
