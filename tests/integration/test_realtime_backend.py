"""The realtime backend wired into Live Mode: a booted AstrBot, real sockets, the fake realtime server.

The live client speaks to AstrBot; AstrBot's realtime backend speaks the OpenAI Realtime protocol to
`tests/harness/fake_realtime.py` (on this test's loop), which scripts the model and records what it
got: appended audio, commits, truncations with their `audio_end_ms`, cancels, tool results, items,
handshakes. History written back is read by the next cascaded turn's LLM request (the fake
OpenAI-compatible server records it). No wall-clock limits are asserted: only order and content.
"""

from __future__ import annotations

import asyncio
import base64
import io
import time
import uuid
import wave
from dataclasses import replace

import pytest
import pytest_asyncio

from live.config import RealtimeBackendSettings
from tests.harness.audio import speech_like_pcm
from tests.harness.fake_realtime import MS_PER_CHAR, FakeRealtime, ScriptedResponse, ScriptedToolCall
from tests.harness.live_client import b64

KEY = "sk-realtime-test"
TOOLS_PLUGIN = "live_test_tools"
STORY = (
    "Sure thing. The lighthouse keeper climbed the stairs every single night. "
    "She polished the great lamp until it shone. Ships passed safely all winter long."
)


@pytest_asyncio.fixture
async def realtime():
    server = FakeRealtime(api_key=KEY)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def use_realtime(tune, realtime):
    """`use_realtime(**fields)`: the plugin's realtime backend points at the fake (new connections see it)."""

    def apply(live: dict | None = None, **fields):
        settings = RealtimeBackendSettings(
            url=realtime.url, api_key=KEY, model="fake-realtime", voice="alloy", transcription_model="whisper-1"
        )
        return tune(realtime=replace(settings, **fields), **(live or {}))

    apply()
    return apply


@pytest.fixture(scope="module")
def tools_plugin(astrbot):
    """The realtime-host tests' tool plugin (real `@filter.llm_tool` tools), loaded for this module."""
    with astrbot.test_plugin(TOOLS_PLUGIN) as plugin:
        yield plugin


async def eventually(check, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
    return result


async def spare_ready(astrbot) -> None:
    """Until every realtime session's pool holds a connected, configured spare (read on AstrBot's loop)."""

    async def check():
        pools = [
            answerer.pool
            for connection in astrbot.plugin().server.connections.values()
            if (answerer := getattr(getattr(connection.session, "_ctx", None), "answerer", None)) is not None
            and hasattr(answerer, "pool")
        ]
        return bool(pools) and all(pool.ready for pool in pools)

    deadline = time.monotonic() + 10
    while not await asyncio.to_thread(astrbot.call, check):
        assert time.monotonic() < deadline, "no warm realtime session"
        await asyncio.sleep(0.02)


async def voice_turn(client, pcm: bytes, stamp: str = "s1") -> None:
    await client.send({"t": "start_speaking", "stamp": stamp})
    for i in range(0, len(pcm), 6400):
        await client.send({"t": "speaking_part", "data": b64(pcm[i : i + 6400])})
    await client.send({"t": "end_speaking", "stamp": stamp})


async def text_turn(client, text: str) -> str:
    await client.send({"t": "text_input", "text": text})
    return (await client.until("user_msg"))["turn"]


def wav_ms(frame: dict) -> float:
    with wave.open(io.BytesIO(base64.b64decode(frame["data"]))) as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1
        return w.getnframes() / w.getframerate() * 1000


def said(messages: list[dict]) -> list[tuple[str, str]]:
    """(role, text) of the user and assistant messages of an LLM request, reminders left out."""
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            content = "".join(
                p.get("text", "") for p in content
                if isinstance(p, dict) and p.get("type") == "text" and not p.get("text", "").startswith("<system")
            )  # fmt: skip
        if m.get("role") in ("user", "assistant"):
            out.append((m["role"], str(content).lstrip("\u2060")))
    return out


async def cascaded_turn(connect, fake, conversation_id: str, text: str = "what did we talk about") -> list[tuple]:
    """One typed turn on the cascade for the same conversation: the LLM request's history."""
    fake.script_reply("We talked a little.")
    client = await connect(conversation_id=conversation_id, backend="cascade")
    assert (await client.until("hello"))["data"]["backend"] == "cascade"
    turn = await text_turn(client, text)
    await client.until("end", turn=turn)
    await client.close()
    return said(fake.streams[-1].messages)


# ---------------------------------------------------------------- turns


async def test_a_voice_turn_is_heard_and_answered_by_the_model(astrbot, connect, fake, realtime, use_realtime):
    realtime.hear("what is the weather like")
    realtime.script(ScriptedResponse("It is sunny and warm.", chunk_ms=100))
    client = await connect(backend="realtime", vad="off")
    hello = await client.until("hello")
    assert hello["data"]["backend"] == "realtime"
    await spare_ready(astrbot)
    pcm = speech_like_pcm(1.5)
    await voice_turn(client, pcm)
    user = await client.until("user_msg")
    assert user["data"]["text"] == "what is the weather like"
    turn = user["turn"]
    end = await client.until("end", turn=turn)
    assert end["data"] == {"interrupted": False, "text": "It is sunny and warm."}
    metrics = await client.until("metrics", turn=turn)
    frames = client.of_turn(turn)
    deltas = [f["data"]["text"] for f in frames if f["t"] == "bot_delta_chunk"]
    assert "".join(deltas) == "It is sunny and warm."
    audio = [f for f in frames if f["t"] == "response"]
    assert audio and all(f["format"] == "wav" and f["sample_rate"] == 24000 for f in audio)
    total_ms = sum(wav_ms(f) for f in audio)
    assert abs(total_ms - len("It is sunny and warm.") * MS_PER_CHAR) < 5  # all of the model's audio, no more
    assert audio[-1]["final"] is True and all(f["final"] is False for f in audio[:-1])
    assert all(wav_ms(f) >= 199 for f in audio[1:-1])  # after the first, WAVs of a sensible length
    states = [f["data"]["state"] for f in client.frames if f["t"] == "state"]
    assert states[:3] == ["listening", "thinking", "speaking"]
    assert (await client.until("state"))["data"]["state"] == "listening"
    # what the model got: our commit of the utterance, resampled 16 -> 24 kHz, then response.create
    appended = sum(realtime.appended_bytes.values())
    assert abs(appended - len(pcm) * 3 // 2) <= 64
    kinds = realtime.received_types()
    assert kinds.index("input_audio_buffer.commit") < kinds.index("response.create")
    update = realtime.session_updates[0]
    assert update["audio"]["input"]["turn_detection"] is None  # our VAD decides turns
    assert update["audio"]["input"]["transcription"] == {"model": "whisper-1"}
    assert update["audio"]["output"]["voice"] == "alloy" and update["instructions"]
    timeline = metrics["data"]["timeline"]
    assert metrics["data"]["backend"] == "realtime" and metrics["data"]["input"] == "voice"
    assert timeline["speech_end"] == 0 <= timeline["agent_start"] <= timeline["first_audio"] <= timeline["turn_end"]
    assert "stt_done" in timeline and "llm_first_token" in timeline


async def test_a_text_turn_streams_pcm16_at_the_clients_rate(connect, fake, realtime, use_realtime):
    realtime.script(ScriptedResponse("Hello, nice to meet you.", chunk_ms=80))
    client = await connect(backend="realtime", audio_format="pcm16", sample_rate=48000)
    await client.until("hello")
    turn = await text_turn(client, "hi there")
    assert client.frames[-1]["data"]["text"] == "hi there"
    end = await client.until("end", turn=turn)
    assert end["data"]["text"] == "Hello, nice to meet you."
    audio = [f for f in client.of_turn(turn) if f["t"] == "response"]
    assert all(f["format"] == "pcm16" and f["sample_rate"] == 48000 for f in audio)
    pcm = b"".join(base64.b64decode(f["data"]) for f in audio)
    assert abs(len(pcm) / 2 / 48 - len("Hello, nice to meet you.") * MS_PER_CHAR) < 5
    assert audio[-1]["final"] is True
    typed = [i for i in realtime.items if i.get("role") == "user" and i["content"][0].get("text") == "hi there"]
    assert typed and typed[0]["content"][0]["type"] == "input_text"


async def stream(client, pcm: bytes) -> None:
    """The microphone in real time: 20 ms binary frames (server VAD finds the utterances)."""
    for i in range(0, len(pcm), 640):
        await client.send_raw(pcm[i : i + 640])
        await asyncio.sleep(0.02)


async def test_server_vad_utterances_reach_the_model_and_speech_over_the_answer_cuts_it(
    connect, fake, realtime, use_realtime, say
):
    """The streamed microphone: our VAD ends each utterance, the model answers it; speaking over the
    answer cancels it, truncates it at the estimated played ms, and the next utterance is answered."""
    use_realtime(live={"end_of_turn": "silence"})
    conversation = f"rt-vad-{uuid.uuid4().hex[:8]}"
    realtime.hear("tell me a story", "stop please")
    realtime.script(ScriptedResponse(STORY, chunk_ms=100, pace=1.0), ScriptedResponse("Okay, stopping."))
    client = await connect(backend="realtime", conversation_id=conversation)
    assert (await client.until("hello"))["data"]["server_vad"] is True
    quiet = bytes(2 * 16000)
    first_words = say("Tell me a story please.")
    await stream(client, quiet[:16000] + first_words + quiet)
    user = await client.until("user_msg")
    turn = user["turn"]
    assert user["data"]["text"] == "tell me a story"
    assert realtime.appended_bytes and sum(realtime.appended_bytes.values()) >= len(first_words) * 3 // 2
    await client.until("response", turn=turn)
    await stream(client, quiet[:16000] + say("Stop, please stop.") + quiet + quiet[:16000])
    await client.until("stop_play", turn=turn)
    end = await client.until("end", turn=turn)
    assert end["data"]["interrupted"] is True
    second = await client.until("user_msg")
    assert second["data"]["text"] == "stop please"
    assert (await client.until("end", turn=second["turn"]))["data"]["text"] == "Okay, stopping."
    cut = realtime.truncations[0]
    assert len(realtime.cancels) == 1 and 0 < cut.audio_end_ms <= cut.sent_audio_ms < len(STORY) * MS_PER_CHAR
    assert realtime.received_types().count("input_audio_buffer.commit") == 2
    await client.close()
    history = await cascaded_turn(connect, fake, conversation)
    assert ("user", "tell me a story") in history and ("user", "stop please") in history
    heard = end["data"]["heard"]
    assert not heard or ("assistant", heard + "…") in history  # what was heard of the cut answer, if a word was
    assert not any(STORY in text for _role, text in history)
    assert ("assistant", "Okay, stopping.") in history


async def test_pause_play_on_the_realtime_backend_a_backchannel_resumes_and_a_meant_interruption_cuts(
    connect, fake, realtime, use_realtime, say
):
    """`pause_play=1` (the Live page): speech over the model's answer pauses it; our STT judges the words.
    "Mm-hmm" resumes it whole; a question cuts it (cancel, truncate) and is answered with the judged words."""
    use_realtime(live={"end_of_turn": "silence"})
    long_story = " ".join(f"Sentence number {n} of a long and winding story." for n in range(1, 9))
    realtime.script(ScriptedResponse(long_story, chunk_ms=100, pace=1.0), ScriptedResponse("On Sunday it rains."))
    client = await connect(backend="realtime", pause_play="1")
    await client.until("hello")
    turn = await text_turn(client, "tell me a story")
    await client.until("response", turn=turn)
    quiet = bytes(2 * 16000)
    fake.script_transcript("Mm-hmm.")
    await stream(client, quiet[:6400] + say("Mm-hmm.") + quiet)
    await client.until("resume_play", turn=turn, timeout=30)
    assert "stop_play" not in [f["t"] for f in client.of_turn(turn)] and realtime.cancels == []
    fake.script_transcript("wait, what about Sunday")
    await stream(client, quiet[:6400] + say("Wait, what about Sunday?") + quiet)
    nxt = await client.until("user_msg", timeout=30)
    assert nxt["data"]["text"] == "wait, what about Sunday"  # the judged words, told once
    kinds = [f["t"] for f in client.of_turn(turn)]
    assert kinds.index("pause_play") < kinds.index("stop_play")
    assert (await client.until("end", turn=nxt["turn"], timeout=30))["data"]["text"] == "On Sunday it rains."
    await eventually(lambda: realtime.truncations, what="the truncation")
    assert len(realtime.cancels) == 1 and realtime.truncations[0].audio_end_ms < len(long_story) * MS_PER_CHAR
    assert not [f for f in client.frames if f["t"] == "user_msg" and f["turn"] == nxt["turn"] and f is not nxt]


# ---------------------------------------------------------------- the model's own turn detection


def vad_states(client) -> list[str]:
    return [f["data"]["state"] for f in client.frames if f["t"] == "vad"]


async def test_the_models_turn_detection_decides_a_spoken_turn(connect, fake, realtime, use_realtime, say):
    """`realtime_turn_detection=server_vad`: the microphone streams to the model as it arrives; the model's
    detection (the fake's energy VAD) commits the utterance and answers it; our VAD ends nothing."""
    use_realtime(turn_detection="server_vad")
    conversation = f"rt-model-vad-{uuid.uuid4().hex[:8]}"
    realtime.hear("what time is it")
    realtime.script(ScriptedResponse("It is noon.", chunk_ms=100))
    client = await connect(backend="realtime", conversation_id=conversation)
    assert (await client.until("hello"))["data"]["server_vad"] is True  # the server side decides turns
    quiet = bytes(2 * 16000)
    words = say("What time is it?")
    await stream(client, quiet[:8000] + words + quiet)
    user = await client.until("user_msg")
    turn = user["turn"]
    assert user["data"]["text"] == "what time is it"
    end = await client.until("end", turn=turn)
    assert end["data"] == {"interrupted": False, "text": "It is noon."}
    metrics = (await client.until("metrics", turn=turn))["data"]
    assert metrics["input"] == "voice" and metrics["eot_mode"] == "backend" and metrics["backend"] == "realtime"
    assert metrics["realtime_swap"] == "kept"  # the session streamed to since connect
    timeline = metrics["timeline"]
    assert timeline["speech_end"] == 0 <= timeline["eot_decided"] <= timeline["first_audio"] <= timeline["turn_end"]
    assert "stt_done" in timeline
    assert vad_states(client)[:2] == ["speech_start", "speech_end"]  # from the model's speech events
    kinds = [f["t"] for f in client.frames]
    assert kinds.index("vad") < kinds.index("user_msg")
    audio = [f for f in client.of_turn(turn) if f["t"] == "response"]
    assert abs(sum(wav_ms(f) for f in audio) - len("It is noon.") * MS_PER_CHAR) < 5
    # what the model got: the whole stream (speech and silence, resampled to 24 kHz), no commit or
    # response.create of ours, and a session configured for its own detection
    assert sum(realtime.appended_bytes.values()) >= (8000 + len(words)) * 3 // 2
    assert "input_audio_buffer.commit" not in realtime.received_types()
    assert "response.create" not in realtime.received_types()
    assert len(realtime.commits) == 0 and realtime.session_updates[0]["audio"]["input"]["turn_detection"] == {
        "type": "server_vad"
    }
    await asyncio.sleep(len("It is noon.") * MS_PER_CHAR / 1000 + 1.2)  # played, then written to history
    await client.close()
    history = await cascaded_turn(connect, fake, conversation)
    assert ("user", "what time is it") in history and ("assistant", "It is noon.") in history


async def test_speech_the_model_hears_over_its_answer_cuts_it_at_the_heard_ms(
    connect, fake, realtime, use_realtime, say
):
    """The model's `speech_started` is the session's barge-in: stop_play, cancel (the model has stopped
    already), truncate at the estimated heard ms; the interruption is the next turn, decided by the model."""
    use_realtime(turn_detection="server_vad")
    conversation = f"rt-model-cut-{uuid.uuid4().hex[:8]}"
    realtime.hear("tell me a story", "stop please")
    realtime.script(ScriptedResponse(STORY, chunk_ms=100, pace=1.0), ScriptedResponse("Okay, stopping."))
    client = await connect(backend="realtime", conversation_id=conversation)
    await client.until("hello")
    quiet = bytes(2 * 16000)
    await stream(client, quiet[:8000] + say("Tell me a story please.") + quiet)
    user = await client.until("user_msg")
    turn = user["turn"]
    got_ms = 0.0
    while got_ms < 800:
        got_ms += wav_ms(await client.until("response", turn=turn))
    await stream(client, say("Stop, please stop.") + quiet)
    await client.until("stop_play", turn=turn)
    end = await client.until("end", turn=turn)
    assert end["data"]["interrupted"] is True
    second = await client.until("user_msg")
    assert second["data"]["text"] == "stop please" and second["turn"] != turn
    assert (await client.until("end", turn=second["turn"]))["data"]["text"] == "Okay, stopping."
    await eventually(lambda: realtime.truncations, what="the truncation")
    cut = realtime.truncations[0]
    assert 0 < cut.audio_end_ms <= cut.sent_audio_ms < len(STORY) * MS_PER_CHAR
    assert end["data"]["heard"] == "" or STORY.startswith(end["data"]["heard"])
    assert "input_audio_buffer.commit" not in realtime.received_types()
    await asyncio.sleep(len("Okay, stopping.") * MS_PER_CHAR / 1000 + 1.2)  # played, then written to history
    await client.close()
    history = await cascaded_turn(connect, fake, conversation)
    assert ("user", "stop please") in history and not any(STORY in text for _role, text in history)


async def test_a_text_turn_with_the_models_turn_detection(connect, fake, realtime, use_realtime):
    use_realtime(turn_detection="semantic_vad")
    realtime.script(ScriptedResponse("Typed and answered."))
    client = await connect(backend="realtime")
    await client.until("hello")
    turn = await text_turn(client, "a typed question")
    assert (await client.until("end", turn=turn))["data"]["text"] == "Typed and answered."
    metrics = (await client.until("metrics", turn=turn))["data"]
    assert metrics["input"] == "text" and metrics["backend"] == "realtime"
    assert realtime.session_updates[0]["audio"]["input"]["turn_detection"] == {"type": "semantic_vad"}
    kinds = realtime.received_types()
    assert kinds.index("conversation.item.create", kinds.index("session.update")) < kinds.index("response.create")


async def test_a_hot_swap_with_the_models_turn_detection(astrbot, connect, fake, realtime, use_realtime, say):
    """The session in use expires: the listener takes the warm spare (configured for the model's detection,
    told the first exchange) before the user speaks again; the spoken turn is answered on it."""
    use_realtime(turn_detection="server_vad")
    realtime.hear("first question", "second question")
    realtime.script(ScriptedResponse("First answer."), ScriptedResponse("Second answer."))
    client = await connect(backend="realtime")
    await client.until("hello")
    quiet = bytes(2 * 16000)
    await stream(client, quiet[:8000] + say("What is the first thing?") + quiet)
    first = (await client.until("user_msg"))["turn"]
    await client.until("end", turn=first)
    m1 = (await client.until("metrics", turn=first))["data"]
    await asyncio.sleep(len("First answer.") * MS_PER_CHAR / 1000 + 1.2)  # played, and written to history
    await spare_ready(astrbot)
    in_use = next(h.connection for h in realtime.handshakes if h.connection in realtime.appended_bytes)
    await realtime.expire(in_use)
    await eventually(lambda: any(n == in_use for _at, n in realtime.closes), what="the expired session to close")
    await stream(client, quiet[:8000] + say("And the second thing?") + quiet)
    second = await client.until("user_msg")
    assert second["data"]["text"] == "second question"
    assert (await client.until("end", turn=second["turn"]))["data"]["text"] == "Second answer."
    m2 = (await client.until("metrics", turn=second["turn"]))["data"]
    assert m2["realtime_swap"] == "warm" and m2["realtime_session"] != m1["realtime_session"]
    swapped_to = [n for n in realtime.appended_bytes if n != in_use]
    assert len(swapped_to) == 1
    updates = [r.event["session"] for r in realtime.received
               if r.connection == swapped_to[0] and r.event["type"] == "session.update"]  # fmt: skip
    assert updates and all(u["audio"]["input"]["turn_detection"] == {"type": "server_vad"} for u in updates)
    told = [r.event["item"] for r in realtime.received
            if r.connection == swapped_to[0] and r.event["type"] == "conversation.item.create"]  # fmt: skip
    texts = [item["content"][0]["text"] for item in told if item.get("type") == "message"]
    assert texts[-2:] == ["first question", "First answer."], texts


async def test_with_the_models_turn_detection_an_unreachable_provider_is_told_at_once(
    connect, fake, realtime, use_realtime
):
    """No provider session to stream to: one coded error without a turn (the user would speak to nobody);
    a typed turn still gets its error and the cascade's answer."""
    use_realtime(turn_detection="server_vad", api_key="sk-wrong")
    fake.script_reply("The cascade answers this one.")
    client = await connect(backend="realtime")
    await client.until("hello")
    error = await client.until("error")
    assert error["code"] == "REALTIME_AUTH_FAILED" and error.get("turn") is None
    turn = await text_turn(client, "are you there")
    assert (await client.until("error", turn=turn))["code"] == "REALTIME_AUTH_FAILED"
    assert (await client.until("end", turn=turn))["data"]["text"] == "The cascade answers this one."
    assert (await client.until("metrics", turn=turn))["data"]["backend"] == "cascade"
    await asyncio.sleep(1.0)  # the listener retries with backoff; it does not repeat the error
    assert len([f for f in client.frames if f["t"] == "error" and f.get("turn") is None]) == 1


# ---------------------------------------------------------------- barge-in and history


async def test_a_barge_in_cancels_truncates_at_the_heard_ms_and_history_keeps_the_heard_part(
    connect, fake, realtime, use_realtime
):
    conversation = f"rt-barge-{uuid.uuid4().hex[:8]}"
    realtime.script(ScriptedResponse(STORY, chunk_ms=100, pace=1.0))  # audio in real time: still streaming
    client = await connect(backend="realtime", conversation_id=conversation)
    await client.until("hello")
    turn = await text_turn(client, "tell me a story")
    got_ms = 0.0
    while got_ms < 800:
        got_ms += wav_ms(await client.until("response", turn=turn))
    played = 700
    await client.send({"t": "interrupt", "turn": turn, "played_ms": played})
    await client.until("stop_play", turn=turn)
    end = await client.until("end", turn=turn)
    heard = end["data"]["heard"]
    assert end["data"]["interrupted"] is True
    assert heard and STORY.startswith(heard) and len(heard) < len(STORY) / 2, heard
    await eventually(lambda: realtime.truncations, what="the truncation")
    cut = realtime.truncations[-1]
    assert cut.audio_end_ms == played and cut.content_index == 0
    assert cut.sent_audio_ms < len(STORY) * MS_PER_CHAR  # the answer was still being generated
    assert len(realtime.cancels) == 1 and realtime.cancels[0].at < cut.at  # response.cancel, then the truncate
    await client.close()
    history = await cascaded_turn(connect, fake, conversation)
    assert ("user", "tell me a story") in history
    assert ("assistant", heard + "…") in history, history
    assert not any(STORY in text for _role, text in history)


async def test_cutting_an_answer_that_is_still_playing_keeps_the_heard_part_only(connect, fake, realtime, use_realtime):
    """The model finished at once; the client still plays it when the user cuts in."""
    conversation = f"rt-played-{uuid.uuid4().hex[:8]}"
    realtime.script(ScriptedResponse(STORY, chunk_ms=100))
    client = await connect(backend="realtime", conversation_id=conversation)
    await client.until("hello")
    turn = await text_turn(client, "tell me a story")
    await client.until("end", turn=turn)
    await client.send({"t": "interrupt", "turn": turn, "played_ms": 1500})
    await client.until("stop_play", turn=turn)
    end = await client.until("end", turn=turn)
    heard = end["data"]["heard"]
    assert heard and STORY.startswith(heard) and heard != STORY
    await eventually(lambda: realtime.truncations, what="the truncation")
    assert realtime.truncations[-1].audio_end_ms == 1500
    assert realtime.cancels == []  # nothing to cancel: the response was done
    await client.close()
    history = await cascaded_turn(connect, fake, conversation)
    assert ("assistant", heard + "…") in history and ("user", "tell me a story") in history


async def test_voice_history_is_written_back_and_seen_by_the_next_cascaded_turn(connect, fake, realtime, use_realtime):
    conversation = f"rt-history-{uuid.uuid4().hex[:8]}"
    realtime.hear("my cat is called Miso")
    realtime.script(ScriptedResponse("What a lovely name for a cat."))
    client = await connect(backend="realtime", conversation_id=conversation, vad="off")
    await client.until("hello")
    await voice_turn(client, speech_like_pcm(1.0))
    turn = (await client.until("user_msg"))["turn"]
    await client.until("end", turn=turn)
    await client.close()  # the completed answer is written at the latest when the session closes
    history = await cascaded_turn(connect, fake, conversation, "what is my cat called")
    exchange = [("user", "my cat is called Miso"), ("assistant", "What a lovely name for a cat.")]
    assert history[:2] == exchange or exchange[0] in history and exchange[1] in history, history
    assert history[-1] == ("user", "what is my cat called")


async def test_a_tool_call_is_run_by_the_host_and_the_model_goes_on(
    astrbot, connect, fake, realtime, use_realtime, tools_plugin
):
    conversation = f"rt-tool-{uuid.uuid4().hex[:8]}"
    tools_plugin.calls.clear()
    realtime.script(
        ScriptedResponse(tool_call=ScriptedToolCall("live_probe_forecast", '{"city": "Oslo", "days": 2}')),
        ScriptedResponse("Oslo will be sunny for two days."),
    )
    client = await connect(backend="realtime", conversation_id=conversation)
    await client.until("hello")
    await spare_ready(astrbot)
    offered = {tool["name"] for tool in realtime.session_updates[0]["tools"]}
    assert "live_probe_forecast" in offered
    turn = await text_turn(client, "what is the weather in Oslo")
    end = await client.until("end", turn=turn)
    assert end["data"]["text"] == "Oslo will be sunny for two days."
    metrics = await client.until("metrics", turn=turn)
    assert metrics["data"]["tools"] == ["live_probe_forecast"]
    assert [c["city"] for c in tools_plugin.calls if c["tool"] == "forecast"] == ["Oslo"]
    assert tools_plugin.calls[-1]["umo"].endswith(conversation)
    result = realtime.tool_results[-1]
    assert result["output"].startswith("Oslo: sunny for 2 days")
    kinds = realtime.received_types()
    assert kinds[kinds.index("conversation.item.create", kinds.index("response.create")) + 1] == "response.create"


async def test_a_slow_tool_is_cancelled_by_a_barge_in(connect, fake, realtime, use_realtime, tools_plugin):
    tools_plugin.cancelled.clear()
    realtime.script(ScriptedResponse(tool_call=ScriptedToolCall("live_probe_slow", '{"seconds": 30}')))
    client = await connect(backend="realtime")
    await client.until("hello")
    turn = await text_turn(client, "take your time")
    await eventually(lambda: any(c["tool"] == "slow" for c in tools_plugin.calls), what="the slow tool to start")
    await client.send({"t": "interrupt", "turn": turn})
    await client.until("stop_play", turn=turn)
    assert (await client.until("end", turn=turn))["data"]["interrupted"] is True
    await eventually(lambda: "slow" in tools_plugin.cancelled, what="the tool to be cancelled")
    await eventually(lambda: realtime.tool_results, what="the model to be told")
    assert realtime.tool_results[-1]["output"].startswith("cancelled")


# ---------------------------------------------------------------- hot-swap


async def test_an_expired_session_is_swapped_for_a_warm_one_with_no_handshake_on_the_turn(
    astrbot, connect, fake, realtime, use_realtime
):
    conversation = f"rt-swap-{uuid.uuid4().hex[:8]}"
    realtime.script(ScriptedResponse("First answer."), ScriptedResponse("Second answer."))
    client = await connect(backend="realtime", conversation_id=conversation)
    await client.until("hello")
    await spare_ready(astrbot)
    sent = time.monotonic()
    first = await text_turn(client, "first question")
    await client.until("end", turn=first)
    m1 = (await client.until("metrics", turn=first))["data"]
    assert m1["realtime_swap"] == "warm"  # taken from the pool, warmed on connect
    assert not [h for h in realtime.handshakes if sent <= h.at <= realtime.first_delta_at[0]]
    await asyncio.sleep(len("First answer.") * MS_PER_CHAR / 1000 + 0.2)  # the client plays it all
    await spare_ready(astrbot)  # the next spare, warmed after the take
    in_use = realtime.handshakes[0].connection
    await realtime.expire(in_use)  # the provider's time limit ends the session in use
    await eventually(lambda: any(n == in_use for _at, n in realtime.closes), what="the expired session to close")
    handshakes = len(realtime.handshakes)
    sent = time.monotonic()
    second = await text_turn(client, "second question")
    assert (await client.until("end", turn=second))["data"]["text"] == "Second answer."
    m2 = (await client.until("metrics", turn=second))["data"]
    assert m2["realtime_swap"] == "warm" and m2["realtime_session"] != m1["realtime_session"]
    answered = realtime.first_delta_at[1]
    assert not [h for h in realtime.handshakes[:handshakes] if sent <= h.at <= answered]
    assert all(h.at > answered for h in realtime.handshakes[handshakes:])  # only the next spare, after
    # the context carried over: the new session was told the first exchange before the question
    spare = realtime.handshakes[1].connection
    told = [
        r.event for r in realtime.received if r.connection == spare and r.event["type"] == "conversation.item.create"
    ]
    texts = [item["item"]["content"][0]["text"] for item in told if item["item"].get("type") == "message"]
    assert texts[-3:] == ["first question", "First answer.", "second question"], texts


# ---------------------------------------------------------------- failures


async def test_a_bad_key_is_a_coded_error_and_the_cascade_answers_the_turn(connect, fake, realtime, use_realtime):
    use_realtime(api_key="sk-wrong")
    fake.script_reply("The cascade answers this one.")
    client = await connect(backend="realtime")
    await client.until("hello")
    turn = await text_turn(client, "are you there")
    error = await client.until("error", turn=turn)
    assert error["code"] == "REALTIME_AUTH_FAILED" and "cascaded backend" in error["data"]
    end = await client.until("end", turn=turn)
    assert end["data"]["text"] == "The cascade answers this one."
    metrics = (await client.until("metrics", turn=turn))["data"]
    assert metrics["backend"] == "cascade" and metrics["realtime_error"] == "REALTIME_AUTH_FAILED"
    assert any(not h.accepted for h in realtime.handshakes)


async def test_without_fallback_a_bad_key_is_the_error_alone(connect, fake, realtime, use_realtime):
    use_realtime(api_key="sk-wrong", fallback=False)
    chats = len(fake.streams)
    client = await connect(backend="realtime")
    await client.until("hello")
    turn = await text_turn(client, "are you there")
    error = await client.until("error", turn=turn)
    assert error["code"] == "REALTIME_AUTH_FAILED" and "cascaded" not in error["data"]
    end = await client.until("end", turn=turn)
    assert end["data"] == {"interrupted": False, "text": ""}
    assert len(fake.streams) == chats  # no LLM request
    await client.send({"t": "ping", "data": "still here"})
    assert (await client.until("pong"))["data"] == "still here"


async def test_a_rate_limit_is_coded_and_answered_by_the_cascade(connect, fake, realtime, use_realtime):
    realtime.script(ScriptedResponse(error=("invalid_request_error", "rate_limit_exceeded", "Rate limit reached.")))
    fake.script_reply("Fallback answer.")
    client = await connect(backend="realtime")
    await client.until("hello")
    turn = await text_turn(client, "hello")
    assert (await client.until("error", turn=turn))["code"] == "REALTIME_RATE_LIMITED"
    assert (await client.until("end", turn=turn))["data"]["text"] == "Fallback answer."
    assert (await client.until("metrics", turn=turn))["data"]["backend"] == "cascade"


async def test_a_drop_before_any_audio_falls_back_and_the_next_turn_uses_a_fresh_session(
    connect, fake, realtime, use_realtime
):
    realtime.script(ScriptedResponse("Never heard.", disconnect_after_chunks=0), ScriptedResponse("Back again."))
    fake.script_reply("Fallback answer.")
    client = await connect(backend="realtime")
    await client.until("hello")
    turn = await text_turn(client, "hello")
    assert (await client.until("error", turn=turn))["code"] == "REALTIME_DISCONNECTED"
    assert (await client.until("end", turn=turn))["data"]["text"] == "Fallback answer."
    m1 = (await client.until("metrics", turn=turn))["data"]
    second = await text_turn(client, "again")
    assert (await client.until("end", turn=second))["data"]["text"] == "Back again."
    m2 = (await client.until("metrics", turn=second))["data"]
    assert m2["backend"] == "realtime" and m2["realtime_session"] != m1.get("realtime_session")


async def test_a_drop_mid_answer_keeps_what_was_said_and_tells_the_code(connect, fake, realtime, use_realtime):
    conversation = f"rt-drop-{uuid.uuid4().hex[:8]}"
    realtime.script(ScriptedResponse(STORY, chunk_ms=100, disconnect_after_chunks=5))
    chats = len(fake.streams)
    client = await connect(backend="realtime", conversation_id=conversation)
    await client.until("hello")
    turn = await text_turn(client, "tell me a story")
    error = await client.until("error", turn=turn)
    assert error["code"] == "REALTIME_DISCONNECTED"
    end = await client.until("end", turn=turn)
    said_so_far = end["data"]["text"]
    assert said_so_far and STORY.startswith(said_so_far.strip()) and said_so_far != STORY
    assert sum(wav_ms(f) for f in client.of_turn(turn) if f["t"] == "response") == pytest.approx(500, abs=5)
    assert len(fake.streams) == chats  # the user heard half an answer: no second one from the cascade
    await client.close()
    history = await cascaded_turn(connect, fake, conversation)
    assert ("user", "tell me a story") in history and ("assistant", said_so_far.strip() + "…") in history


@pytest.mark.parametrize(
    "code",
    ["REALTIME_REFUSED", "REALTIME_SERVER_ERROR", "REALTIME_BAD_REQUEST", "REALTIME_SESSION_EXPIRED",
     "REALTIME_TIMEOUT", "REALTIME_CONNECT_FAILED"],
)  # fmt: skip
async def test_provider_failures_reach_the_client_coded(connect, fake, realtime, use_realtime, code):
    """Each failure is its code on the turn; the cascade answers unless audio already went out (or it refused)."""
    script = {
        "REALTIME_REFUSED": ScriptedResponse("I cannot say that.", refuse_after_chunks=1),
        "REALTIME_SERVER_ERROR": ScriptedResponse(fail=("server_error", "The server had an error.")),
        "REALTIME_BAD_REQUEST": ScriptedResponse(error=("invalid_request_error", "invalid_value", "Bad value.")),
        "REALTIME_SESSION_EXPIRED": ScriptedResponse(
            error=("invalid_request_error", "session_expired", "Your session hit the maximum duration.")
        ),
        "REALTIME_TIMEOUT": ScriptedResponse("Too late.", first_delay=3.0),  # the answer's events stop too long
        "REALTIME_CONNECT_FAILED": None,  # every handshake refused with HTTP 404
    }[code]
    if script is None:
        realtime.handshake_status = 404
    else:
        realtime.script(script)
    use_realtime(live={"agent_idle_timeout_s": 1.0})
    fake.script_reply("The cascade answers.")
    client = await connect(backend="realtime")
    await client.until("hello")
    turn = await text_turn(client, "hello")
    error = await client.until("error", turn=turn)
    assert error["code"] == code, error
    end = await client.until("end", turn=turn)
    metrics = (await client.until("metrics", turn=turn))["data"]
    assert metrics["realtime_error"] == code
    if code == "REALTIME_REFUSED":  # the model's refusal is its answer: what it said stands
        said_so_far = end["data"]["text"]
        assert said_so_far and "I cannot say that.".startswith(said_so_far) and metrics["backend"] == "realtime"
        realtime.script(ScriptedResponse("Something else, then."))
        again = await text_turn(client, "something else")
        await client.until("end", turn=again)
        assert (await client.until("metrics", turn=again))["data"]["realtime_swap"] == "kept"  # the session is fine
    else:
        assert end["data"]["text"] == "The cascade answers." and metrics["backend"] == "cascade"
    await client.send({"t": "ping", "data": "ok"})
    assert (await client.until("pong"))["data"] == "ok"


# ---------------------------------------------------------------- selection


async def test_backend_query_is_checked(connect, realtime, use_realtime, tune):
    client = await connect(backend="psychic")
    code, frames = await client.closed()
    assert code == 1008 and frames[-1]["code"] == "INVALID_MESSAGE_FORMAT"
    tune(realtime=RealtimeBackendSettings())  # not configured
    client = await connect(backend="realtime")
    code, frames = await client.closed()
    assert code == 1008 and frames[-1]["code"] == "REALTIME_NOT_CONFIGURED"
    assert "realtime_url" in frames[-1]["data"]
    client = await connect(backend="cascade")
    assert (await client.until("hello"))["data"]["backend"] == "cascade"


async def test_the_setting_picks_the_backend_and_the_query_overrides_it(connect, realtime, use_realtime, tune):
    tune(backend="realtime", realtime=RealtimeBackendSettings(url=realtime.url, api_key=KEY))
    client = await connect()
    assert (await client.until("hello"))["data"]["backend"] == "realtime"
    client = await connect(backend="cascade")
    assert (await client.until("hello"))["data"]["backend"] == "cascade"


# ---------------------------------------------------------------- rooms and dialects


async def test_a_room_runs_on_the_realtime_backend(connect, realtime, use_realtime):
    realtime.script(ScriptedResponse("Hello, room!"))
    room = f"rt-{uuid.uuid4().hex[:6]}"
    streamer = await connect(room=room, backend="realtime")
    assert (await streamer.until("hello"))["data"]["backend"] == "realtime"
    overlay = await connect(room=room, role="listener", backend="realtime")
    await overlay.until("hello")
    turn = await text_turn(streamer, "greet the room")
    for client in (streamer, overlay):
        assert (await client.until("end", turn=turn))["data"]["text"] == "Hello, room!"
    assert [f for f in overlay.of_turn(turn) if f["t"] == "response"]


async def test_olv_on_the_realtime_backend(connect, realtime, use_realtime):
    import json

    realtime.script(ScriptedResponse("Hi from the model."))
    client = await connect(protocol="olv", backend="realtime")
    await client.send_raw(json.dumps({"type": "text-input", "text": "hello"}))
    audio, done = [], False
    deadline = time.monotonic() + 15
    while not done and time.monotonic() < deadline:
        frame = json.loads(await asyncio.wait_for(client.ws.recv(), 15))
        if frame.get("type") == "audio":
            audio.append(frame)
        done = frame.get("type") == "backend-synth-complete"
    assert done and audio and all(a["audio"] for a in audio)
    assert "".join(a["display_text"]["text"] for a in audio).replace("  ", " ").strip() == "Hi from the model."


async def test_neko_on_the_realtime_backend_gets_48k_pcm(connect, realtime, use_realtime):
    import json

    realtime.script(ScriptedResponse("Meow, hello."))
    client = await connect(protocol="neko", backend="realtime")
    await client.send_raw(json.dumps({"action": "start_session", "input_type": "text"}))
    await client.send_raw(json.dumps({"action": "stream_data", "input_type": "text", "data": "hi"}))
    pcm, text = b"", ""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        raw = await asyncio.wait_for(client.ws.recv(), 15)
        if isinstance(raw, bytes):
            pcm += raw
            continue
        frame = json.loads(raw)
        if frame.get("type") == "gemini_response":
            text += frame["text"]
        if frame.get("type") == "system" and frame.get("data") == "turn end":
            break
    assert text == "Meow, hello."
    assert abs(len(pcm) / 2 / 48 - len("Meow, hello.") * MS_PER_CHAR) < 5  # all of it, at 48 kHz
