"""End-of-turn speculation through the booted server: real Piper speech streamed in real time as
20 ms frames, the real smart-turn model, the host's real agent pipeline and tool executor.

A question is answered ahead of the end of turn; an utterance the user talks on through is
dropped without a trace (client, LLM memory, WebChat transcript); a speculative turn's tool call
waits for the commit (a test plugin's tool records every call). Speed is printed, not asserted.
"""

import asyncio
import uuid

import pytest

from tests.integration.test_end_of_turn_server import metrics_of, model_ready, pause
from tests.integration.test_faults import _text, history_of
from tests.integration.test_server_vad import stream, with_noise

pytest.importorskip("onnxruntime")

TOOLS_PLUGIN = "live_speculation_tools"
QUESTION = "What time is it now?"  # the model is sure (0.98): committed at the short pause
# Realistic provider latencies (the benchmark's): STT 150 ms, first token 300 ms, TTS 120 ms.
STT_S, TTFT_S, TTS_S = 0.15, 0.3, 0.12


@pytest.fixture(scope="module")
def tools_plugin(astrbot):
    """The recording tool plugin, loaded into the booted AstrBot for this module, uninstalled after."""
    with astrbot.test_plugin(TOOLS_PLUGIN) as plugin:
        yield plugin


def realistic(fake) -> None:
    fake.stt_delay, fake.tts_delay, fake.default_ttft = STT_S, TTS_S, TTFT_S


async def ask(astrbot, connect, fake, say) -> dict:
    """One spoken question; returns its turn's metrics."""
    fake.default_transcript = "what time is it now"
    fake.script_reply("It is noon.")
    client = await connect(conversation_id=f"spec-{uuid.uuid4().hex[:8]}")
    await client.until("hello")
    await model_ready(astrbot)
    await stream(client, pause(0.6) + with_noise(say(QUESTION)) + pause(1.5))
    user = await client.until("user_msg", timeout=30)
    data = await metrics_of(client, user["turn"])
    await client.close()
    return data


async def test_a_question_is_answered_ahead_and_its_first_audio_comes_sooner(astrbot, connect, fake, say, tune):
    realistic(fake)
    await ask(astrbot, connect, fake, say)  # a first, cold turn (first requests of each provider): not compared
    fake.reset()
    realistic(fake)
    ahead = await ask(astrbot, connect, fake, say)
    # "transcript" when the model decided before the transcription was done (the agent then starts at once)
    assert ahead["speculation"] in ("answer", "transcript") and ahead["speculations_dropped"] == 0, ahead
    # the model is sure (0.98): the score alone commits; on a loaded machine its answer may come after
    # the fallback silence, which then commits the same held answer
    assert (ahead["eot_reason"], ahead["eot_confirmed_by"]) in (("model_done", "score"), ("fallback_silence", None))
    timeline = ahead["timeline"]
    assert timeline["speculation_start"] < timeline["eot_decided"] <= timeline["first_audio"]
    assert ahead["speculation_saved_ms"] > 0  # the transcription ran during the model's judgement
    assert len(fake.transcriptions) == 1  # the held transcript was the turn's: no second STT call

    tune(end_of_turn_speculation=False)
    fake.reset()
    realistic(fake)
    after = await ask(astrbot, connect, fake, say)
    assert "speculation" not in after and "speculation_start" not in after["timeline"]
    print(  # the comparison, for the log (one run each: not asserted, the machine is noisy)
        f"\nfirst audio after the last word: {timeline['first_audio']} ms with speculation "
        f"(saved {ahead['speculation_saved_ms']} ms), {after['timeline']['first_audio']} ms without; "
        f"end decided at {timeline['eot_decided']} / {after['timeline']['eot_decided']} ms"
    )


THINKING = "Well, the thing is,"  # the model: probably done (0.85 here), below the bar of 0.96
CONTINUATION = "I need a table for two people tonight."
HEAD = "well the thing is"  # heard unpunctuated: the words say nothing either way, the score decides
WHOLE = "well the thing is i need a table for two people tonight."


def hear_what_is_said(fake, say, whole: str, *parts: tuple[str, str]) -> None:
    """The fake STT hears what an upload holds: for each (spoken, heard) of `parts`, in order, an upload
    that ends in the pause after `spoken` hears `heard`; a longer one `whole`. An upload starts ~300 ms
    before the voice and a pause is judged ~224 ms in, so it is at most Piper's clip of `spoken` + 0.75 s
    long; the next words (after a comma's pause, ~300 ms, or a thinking pause) make it longer."""
    fake.heard_by_length = [(len(say(spoken)) / (2 * 16000) + 0.75, heard) for spoken, heard in parts]
    fake.heard_by_length.append((float("inf"), whole))


async def test_a_thinking_pause_drops_the_speculation_and_the_tool_runs_only_after_the_commit(
    astrbot, connect, fake, say, tools_plugin, tune
):
    """The model calls the first phrase probably done: the agent starts ahead and asks for the tool.
    The user goes on: the call never runs and nothing of that answer reaches the client or history.
    The whole utterance is then answered, and its tool call runs once, after the commit.

    The confirming silence (and the fallback) is 1.2 s here: the pause and the voice's own lead-in
    silence add up to about a second, and a model slowed by a loaded machine must not end the turn."""
    tune(vad_silence_ms=1200, end_of_turn_unsure_ms=1200)
    calls = len(tools_plugin.calls)
    hear_what_is_said(fake, say, WHOLE, ("Well,", "Well,"), (THINKING, HEAD))
    fake.script_reply("Let me book that.", tool_call=("live_spec_book_table", {"people": 2}))  # the speculation
    fake.script_reply("Booking it.", tool_call=("live_spec_book_table", {"people": 2}))  # the committed turn
    fake.script_reply("Your table for two is booked.")  # after the tool's result
    conversation = f"spec-tool-{uuid.uuid4().hex[:8]}"
    client = await connect(conversation_id=conversation)
    await client.until("hello")
    await model_ready(astrbot)
    await stream(client, pause(0.6) + with_noise(say(THINKING)))
    await stream(client, pause(0.8))  # the thinking pause: the speculative agent asks for the tool
    for _ in range(100):
        if fake.streams:
            break
        await asyncio.sleep(0.05)
    assert fake.streams, "the model did not call the phrase probably done: no speculative agent started"
    await asyncio.sleep(0.3)  # its tool call reaches the host's hook and waits there
    assert len(tools_plugin.calls) == calls
    await stream(client, with_noise(say(CONTINUATION)) + pause(2.0))
    user = await client.until("user_msg", timeout=30)
    await client.until("end", turn=user["turn"], timeout=30)
    data = await metrics_of(client, user["turn"])
    await client.drain(0.5)

    assert data["speculations_dropped"] >= 1, data
    assert [f["data"]["text"] for f in client.frames if f["t"] == "user_msg"] == [WHOLE]
    said = "".join(f["data"]["text"] for f in client.frames if f["t"] == "bot_text_chunk")
    assert "Let me book that" not in said and "booked" in said
    assert len(tools_plugin.calls) == calls + 1  # the committed turn's call only
    assert len(fake.streams) == 3  # the dropped request, the turn's, and its follow-up after the tool
    assert fake.streams[0].closed_early or fake.streams[0].finished is not None

    history = await history_of(astrbot, conversation)
    users = [_text(r.get("message")) for r in history.transcript if r.get("type") == "user"]
    assert users == [WHOLE], history.transcript
    memory = [(m.get("role"), _text(m.get("content"))) for m in history.memory]
    (asked,) = [t for role, t in memory if role == "user"]
    assert WHOLE in asked, memory
    assert not any("Let me book that" in t or t in ("Stop output.", "Output stopped.") for _, t in memory), memory
    tool_results = [m for m in history.memory if m.get("role") == "tool"]
    assert len(tool_results) == 1, history.memory



async def test_a_thinking_pause_drops_its_transcript_and_the_whole_utterance_is_one_turn(
    astrbot, connect, fake, say, tune
):
    """ "I need to, um," (the model: not done; the words too), 800 ms, then the rest: the transcription
    started at the pause is dropped when the user goes on; one turn, one chat request, one exchange in
    history. The whole sentence's words sound finished: the turn ends by them at the latest after the
    pause after an unsure "done", not at the longest pause.
    (End-of-speech silence 1.2 s: a model slowed by a loaded machine cannot end the turn in the pause.)"""
    tune(vad_silence_ms=1200)
    whole = "I need to, um, book a table for two people tonight."
    hear_what_is_said(fake, say, whole, ("I need to,", "I need to,"), ("I need to, um,", "I need to, um,"))
    fake.script_reply("For two, tonight. Done.")
    conversation = f"spec-pause-{uuid.uuid4().hex[:8]}"
    client = await connect(conversation_id=conversation)
    await client.until("hello")
    await model_ready(astrbot)
    audio = pause(0.6) + with_noise(say("I need to, um,")) + pause(0.8)
    await stream(client, audio + with_noise(say("book a table for two people tonight.")) + pause(3.0))
    user = await client.until("user_msg", timeout=30)
    await client.until("end", turn=user["turn"], timeout=30)
    data = await metrics_of(client, user["turn"])
    await client.drain(0.5)
    assert data["speculations_dropped"] >= 1, data
    # (fallback_silence: the model answered late on a loaded machine; the words were still weighed)
    assert data["eot_text"] == "finished" and data["eot_reason"] in ("model_done", "text_done", "fallback_silence"), data
    assert data["eot_silence_ms"] <= 1300, data  # the unsure silence (1 s) at the latest, and a VAD frame
    assert [f["data"]["text"] for f in client.frames if f["t"] == "user_msg"] == [whole]
    assert [f["data"]["state"] for f in client.frames if f["t"] == "vad"] == ["speech_start", "speech_end"]
    assert len(fake.streams) == 1 and len(fake.transcriptions) >= 2  # the dropped one cost a transcription
    history = await history_of(astrbot, conversation)
    assert [_text(r.get("message")) for r in history.transcript if r.get("type") == "user"] == [whole]
    assert len([m for m in history.memory if m.get("role") == "user"]) == 1


async def test_a_held_tool_call_runs_once_the_silence_confirms_the_turn(
    astrbot, connect, fake, say, tools_plugin, tune
):
    """A probable "done" (below the bar): the agent starts ahead and its tool call waits in the host's
    hook; the pause after an unsure "done" (1.2 s here: the voice's own trailing silence and the 0.8 s
    pause must stay below it) then confirms the turn, and the tool runs, once."""
    tune(vad_silence_ms=1200, end_of_turn_unsure_ms=1200)
    calls = len(tools_plugin.calls)
    # the pause after "Well," is heard as that: unfinished words, so no answer starts there
    hear_what_is_said(fake, say, HEAD, ("Well,", "Well,"))
    fake.script_reply("Let me see.", tool_call=("live_spec_book_table", {"people": 4}))
    fake.script_reply("A table for four is booked.")
    client = await connect(conversation_id=f"spec-held-{uuid.uuid4().hex[:8]}")
    await client.until("hello")
    await model_ready(astrbot)
    await stream(client, pause(0.6) + with_noise(say(THINKING)) + pause(0.8))
    for _ in range(100):
        if fake.streams:
            break
        await asyncio.sleep(0.05)
    assert fake.streams, "the model did not call the phrase probably done: no speculative agent started"
    await asyncio.sleep(0.3)
    assert len(tools_plugin.calls) == calls and not [f for f in client.frames if f["t"] == "user_msg"]
    await stream(client, pause(1.0))  # past the 1.2 s end-of-speech silence: confirmed
    user = await client.until("user_msg", timeout=30)
    await client.until("end", turn=user["turn"], timeout=30)
    data = await metrics_of(client, user["turn"])
    assert data["speculation"] == "answer" and data["eot_confirmed_by"] == "silence", data
    assert len(tools_plugin.calls) == calls + 1 and tools_plugin.calls[-1]["people"] == 4
    said = "".join(f["data"]["text"] for f in client.frames if f["t"] == "bot_text_chunk")
    assert "booked" in said
