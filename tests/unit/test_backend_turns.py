"""The session with a backend that detects turns itself (the realtime model's own turn detection), on fake
ports: the microphone goes to the backend, not to our VAD; the backend's speech is the barge-in; its commit
begins a turn through `begin_backend_turn`. The backend here is the cascade answering the words the model
would have heard (the realtime one is tested end to end in tests/integration/test_realtime_backend.py)."""

import asyncio

from live.config import LiveSettings
from live.engine.cascade import CascadeAnswerer
from live.engine.events import (
    AppendAudio,
    EndSpeaking,
    ErrorRaised,
    PlaybackPaused,
    PlaybackStopped,
    SendText,
    SessionStarted,
    SetMuted,
    SpeechDetected,
    StartSpeaking,
    SubmitUtterance,
    TurnEnded,
    TurnMetrics,
    UserTranscribed,
)
from live.engine.session import DetectsTurns
from tests.harness.fake_ports import harness, until  # noqa: F401 (a fixture)


class ModelTurns(CascadeAnswerer):
    """A backend whose model hears the microphone and decides the turns."""

    backend = "model-turns"
    detects_turns = True

    def __init__(self) -> None:
        self.heard: list[bytes] = []
        self.listener = None

    def listen(self, session) -> None:
        self.listener = session

    def hear(self, pcm: bytes) -> None:
        self.heard.append(pcm)

    async def answer(self, turn) -> None:
        if turn.pcm == b"":  # a turn the model began: its words are the model's transcription
            turn.emit(UserTranscribed(turn.id, "what the model heard", 0, turn.viewers))
            await self.reply(turn, "what the model heard")
        else:
            await super().answer(turn)


async def test_the_microphone_goes_to_the_backend_and_its_commit_begins_a_turn(harness):
    backend = ModelTurns()
    assert isinstance(backend, DetectsTurns) and not isinstance(CascadeAnswerer(), DetectsTurns)
    h = harness(answerer=backend)
    assert backend.listener is h.session and h.of(SessionStarted)[0].server_vad is True
    h.agent.script.append(("Here you are.",))
    h.session.handle(AppendAudio(bytes(640)))
    h.session.handle(SubmitUtterance(bytes(3200)))
    assert backend.heard == [bytes(640), bytes(3200)] and h.session._vad_stream is None
    h.session.backend_speech_started()
    h.clock.advance(1000)
    h.session.backend_speech_stopped()
    h.clock.advance(250)
    turn = h.session.begin_backend_turn()
    assert turn is not None
    await h.until(TurnMetrics)
    assert [e.state for e in h.of(SpeechDetected)] == ["speech_start", "speech_end"]
    assert [e.text for e in h.of(UserTranscribed)] == ["what the model heard"]
    metrics = h.of(TurnMetrics)[0]
    assert metrics.turn_id == turn.id and metrics.extra["input"] == "voice" and metrics.extra["eot_mode"] == "backend"
    assert metrics.timeline["speech_end"] == 0 and metrics.timeline["eot_decided"] == 250
    h.session.handle(StartSpeaking("s1"))
    h.session.handle(AppendAudio(bytes(320)))
    h.session.handle(EndSpeaking("s1"))  # the model's detection, not end_speaking, ends the turn
    await asyncio.sleep(0.02)
    assert backend.heard[-1] == bytes(320) and len(h.of(UserTranscribed)) == 1
    assert not h.of(ErrorRaised)


async def test_the_backends_speech_cuts_the_answer_even_for_a_pausing_client(harness):
    backend = ModelTurns()
    h = harness(LiveSettings(barge_in_min_speech_ms=300), answerer=backend, pause_play=True)
    h.session.handle(SendText("tell me a story"))
    run = await h.agent.started()
    h.session.backend_speech_started()  # the model has stopped its answer: a plain cut, no pause
    assert len(h.of(PlaybackStopped)) == 1 and run.stopped and not h.of(PlaybackPaused)
    await until(lambda: any(e.interrupted for e in h.of(TurnEnded)))


async def test_muted_audio_does_not_reach_the_backend(harness):
    backend = ModelTurns()
    h = harness(answerer=backend)
    h.session.handle(SetMuted(True))
    h.session.handle(AppendAudio(bytes(640)))
    assert backend.heard == []
