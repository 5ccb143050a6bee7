"""Pause on speech (`pause_play=1`) through the booted server, with real Piper speech.

The microphone streams real speech in real time as 20 ms binary frames while the character
answers; Silero VAD hears it, the fake STT server transcribes it (scripted words). An "mm-hmm"
pauses the answer and resumes it whole; a short meant interruption is judged by its words; a
long one cuts before it ends; a client without `pause_play` gets today's barge-in.
"""

import asyncio
import time

from tests.integration.test_server_vad import FRAME, noise, with_noise


async def stream(client, pcm: bytes, sent: list[float] | None = None) -> None:
    """The microphone in real time: 20 ms frames, paced on the clock (no drift); `sent` gets each send time."""
    start = time.monotonic()
    for n, i in enumerate(range(0, len(pcm), FRAME)):
        await asyncio.sleep(max(0.0, start + n * 0.02 - time.monotonic()))
        if sent is not None:
            sent.append(time.monotonic())
        await client.send_raw(pcm[i : i + FRAME])


STORY = " ".join(f"Sentence number {n} of a long and winding story." for n in range(1, 13))


async def answering(client, fake):
    """A typed question whose long answer is being written and played."""
    fake.script_reply(STORY, ttft=0.05, interval=0.03)
    await client.send({"t": "text_input", "text": "tell me a story"})
    user = await client.until("user_msg")
    await client.until("response", turn=user["turn"])
    return user["turn"]


def names(client, turn: str) -> list[str]:
    return [f["t"] for f in client.of_turn(turn)]


async def seen(client, t: str, timeout: float = 30, **match) -> dict:
    """The first frame of type `t` (matching `match`) received so far, or the next one to come."""
    for frame in client.frames:
        if frame.get("t") == t and all(frame.get(k) == v for k, v in match.items()):
            return frame
    return await client.until(t, timeout=timeout, **match)


async def assistant_history(client, fake) -> list[str]:
    """The assistant's earlier answers as the agent sees them (asked with one more text turn)."""
    fake.script_reply("Sure.")
    await client.send({"t": "text_input", "text": "thanks"})
    user = await client.until("user_msg", timeout=30)
    await client.until("end", turn=user["turn"], timeout=30)
    return [text_of(m["content"]) for m in fake.streams[-1].messages if m["role"] == "assistant"]


def text_of(content) -> str:
    """A message's text: a string, or the text parts of a list of parts."""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


async def test_mm_hmm_pauses_the_answer_then_resumes_it_whole(connect, fake, say):
    client = await connect(pause_play="1")
    hello = await client.until("hello")
    assert "pause_play" in hello["data"]["features"]
    turn = await answering(client, fake)
    fake.script_transcript("Mm-hmm.")
    reading = asyncio.create_task(client.until("resume_play", turn=turn, timeout=60))  # frames timed on arrival
    sent: list[float] = []  # when each 20 ms frame went out
    await stream(client, noise(0.2) + with_noise(say("Mm-hmm.")) + noise(1.0), sent=sent)
    resume = await reading
    notice = next(f for f in client.frames if f["t"] == "transcript_empty")
    pause = next(f for f in client.frames if f["t"] == "pause_play")
    start = next(f for f in client.frames if f["t"] == "vad" and f["data"]["state"] == "speech_start")
    assert pause["turn"] == turn and start["_at"] <= pause["_at"] < notice["_at"] <= resume["_at"]
    # Measured, not asserted: Silero VAD needs the clip's first 120 ms (its voice starts at 40 ms), so
    # the pause can come no sooner than the 16th frame; the rest is the server and the socket.
    detectable = sent[(200 + 120) // 20 - 1]
    print(f"frame that completes VAD onset sent -> pause_play received: {(pause['_at'] - detectable) * 1000:.0f} ms")
    assert notice["data"]["reason"] == "backchannel" and notice["turn"] != turn
    end = await seen(client, "end", turn=turn, timeout=60)
    assert end["data"] == {"interrupted": False, "text": STORY}
    assert "stop_play" not in names(client, turn)
    assert not [f for f in client.frames if f["t"] == "user_msg" and f["data"]["text"] == "Mm-hmm."]
    assert len(fake.transcriptions) == 1  # judged once, never a turn
    # once its audio has played out (paused time included), the next turn sees the whole answer
    audio = [f for f in client.of_turn(turn) if f["t"] == "response"]
    done = audio[0]["_at"] + sum(f["duration_ms"] for f in audio) / 1000 + (resume["_at"] - pause["_at"]) + 1.5
    await asyncio.sleep(max(0.0, done - time.monotonic()))
    assert (await assistant_history(client, fake))[-1] == STORY


async def test_a_short_meant_interruption_cuts_at_the_pause_and_is_transcribed_once(connect, fake, say):
    client = await connect(pause_play="1", conversation_id="pause-meant-test")
    turn = await answering(client, fake)
    fake.script_transcript("wait, what about Sunday")
    fake.script_reply("On Sunday it rains.")
    await stream(client, noise(0.2) + with_noise(say("Wait, what about Sunday?")) + noise(1.0))
    nxt = await client.until("user_msg", timeout=30)
    assert nxt["data"]["text"] == "wait, what about Sunday"
    frames = names(client, turn)
    assert frames.index("pause_play") < frames.index("stop_play")
    end = [f for f in client.of_turn(turn) if f["t"] == "end"][-1]  # a second one if it was written to its end
    assert end["data"]["interrupted"] is True and STORY.startswith(end["data"]["heard"])
    assert "resume_play" not in frames and not [f for f in client.frames if f["t"] == "transcript_empty"]
    await client.until("end", turn=nxt["turn"], timeout=30)
    assert len(fake.transcriptions) == 1  # the verdict's transcript is the turn's
    history = [(m["role"], text_of(m["content"])) for m in fake.streams[-1].messages if m["role"] != "system"]
    assert history[-1] == ("user", "wait, what about Sunday") or "wait, what about Sunday" in history[-1][1]
    cut = [text for role, text in history if role == "assistant"]
    assert cut and cut[-1].endswith("…") and len(cut[-1]) < len(STORY), cut


async def test_a_long_interruption_cuts_before_it_ends(connect, fake, say):
    client = await connect(pause_play="1")
    turn = await answering(client, fake)
    fake.script_transcript("wait stop for a moment")
    fake.script_reply("Sure, I am listening.")
    long = say("Wait, stop for a moment please, I want to ask something else.")  # 3.8 s
    sent: list[float] = []  # when each 20 ms frame went out
    reading = asyncio.create_task(seen(client, "stop_play", turn=turn))  # frames timed on arrival
    await stream(client, noise(0.2) + with_noise(long) + noise(1.0), sent=sent)
    stop = await reading
    nxt = await client.until("user_msg", timeout=30)
    voice_over = sent[(200 + len(long) * 1000 // 32000) // 20 - 1]  # the clip's last frame left the client
    # Meant (by its length, or its first words when the model ends it at "Wait, stop."): cut while the
    # user still speaks.
    assert stop["_at"] < voice_over, "cut while the user still speaks"
    assert nxt["data"]["text"] == "wait stop for a moment"


async def test_a_client_without_pause_play_is_cut_as_before(connect, fake, say):
    client = await connect()
    turn = await answering(client, fake)
    fake.script_transcript("Mm-hmm.")
    fake.script_reply("Yes?")
    await stream(client, noise(0.2) + with_noise(say("Mm-hmm.")) + noise(1.0))
    nxt = await client.until("user_msg", timeout=30)
    assert nxt["data"]["text"] == "Mm-hmm."  # answered as a question, as it always was
    frames = names(client, turn)
    assert "stop_play" in frames and "pause_play" not in frames
    assert not [f for f in client.frames if f["t"] in ("pause_play", "resume_play", "transcript_empty")]
