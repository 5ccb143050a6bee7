"""Voice and text turns end to end through the booted AstrBot."""

import asyncio

from tests.harness.audio import speech_like_pcm
from tests.harness.live_client import b64

REPLY = "The sky is blue today, with a few clouds. Tomorrow brings rain. Take an umbrella."


async def voice_turn(client, pcm: bytes, stamp: str = "s1") -> None:
    await client.send({"t": "start_speaking", "stamp": stamp})
    for i in range(0, len(pcm), 6400):
        await client.send({"t": "speaking_part", "data": b64(pcm[i : i + 6400])})
    await client.send({"t": "end_speaking", "stamp": stamp})


async def test_voice_turn_end_to_end_with_audio(connect, fake):
    fake.script_transcript("what is the weather like")
    fake.script_reply(REPLY)
    client = await connect()
    await client.until("hello")
    await voice_turn(client, speech_like_pcm(1.2))
    user = await client.until("user_msg")
    assert user["data"]["text"] == "what is the weather like"
    turn = user["turn"]
    end = await client.until("end", turn=turn)
    assert end["data"] == {"interrupted": False, "text": REPLY}
    frames = client.of_turn(turn)
    kinds = [f["t"] for f in frames]
    assert kinds.count("response") >= 3
    assert all(f["format"] == "wav" and f["duration_ms"] > 0 for f in frames if f["t"] == "response")
    # deltas arrive before the first audio
    assert kinds.index("bot_delta_chunk") < kinds.index("response")
    # sentences go out in order, each text before its audio
    texts = [f["data"]["text"] for f in frames if f["t"] == "bot_text_chunk"]
    assert " ".join(texts) == REPLY
    states = [f["data"]["state"] for f in client.frames if f["t"] == "state"]
    assert states == ["listening", "thinking", "speaking"]  # "listening" again follows the metrics
    metrics = await client.until("metrics", turn=turn)
    timeline = metrics["data"]["timeline"]
    for key in ("speech_end", "stt_done", "llm_first_token", "first_sentence", "first_audio", "turn_end"):
        assert key in timeline, key
    assert timeline["speech_end"] <= timeline["stt_done"] <= timeline["first_audio"] <= timeline["turn_end"]
    # the plugin's STT got a real WAV of what was sent
    assert fake.transcriptions[-1]["wav"] and fake.transcriptions[-1]["bytes"] > 30000


async def test_plugins_speech_stage_produced_the_audio(connect, fake):
    """The first clause is cut at its comma: the host's built-in stage never does that."""
    fake.script_reply(REPLY)
    client = await connect()
    await client.send({"t": "text_input", "text": "how is the sky"})
    user = await client.until("user_msg")
    await client.until("end", turn=user["turn"])
    spoken = [s["input"] for s in fake.speeches]
    assert spoken[0] == "The sky is blue today,"
    assert spoken[1:] == ["with a few clouds.", "Tomorrow brings rain.", "Take an umbrella."]


async def test_text_turn_reaches_the_llm_with_the_live_prompt(connect, fake):
    fake.script_reply("Hi there, nice to meet you.")
    client = await connect()
    await client.send({"t": "text_input", "text": "introduce yourself briefly"})
    user = await client.until("user_msg")
    await client.until("end", turn=user["turn"])
    request = fake.streams[-1]
    assert request.stream
    assert request.messages[-1]["role"] == "user"
    assert "introduce yourself briefly" in str(request.messages[-1]["content"])
    system = " ".join(str(m.get("content")) for m in request.messages if m["role"] == "system")
    assert "live" in system.lower() or "voice" in system.lower() or "spoken" in system.lower()


async def test_empty_transcript_makes_no_llm_call(connect, fake):
    fake.script_transcript("")
    client = await connect()
    await voice_turn(client, speech_like_pcm(0.6))
    frame = await client.until("transcript_empty")
    assert frame["data"]["reason"] == "empty_transcript"
    await client.drain(0.3)
    assert fake.streams == []


async def test_tts_failure_still_delivers_the_sentence_text(connect, fake):
    fake.script_reply("First part is fine. Second part breaks. Third part is fine.")
    fake.tts_fail_containing = "breaks"
    client = await connect()
    await client.send({"t": "text_input", "text": "tell me three things"})
    user = await client.until("user_msg")
    end = await client.until("end", turn=user["turn"])
    frames = client.of_turn(user["turn"])
    errors = [f for f in frames if f["t"] == "error"]
    assert [e["code"] for e in errors] == ["TTS_FAILED"]
    texts = [f["data"]["text"] for f in frames if f["t"] == "bot_text_chunk"]
    assert "Second part breaks." in texts
    assert sum(1 for f in frames if f["t"] == "response") == 2
    assert end["data"]["interrupted"] is False


async def test_reconnect_continues_the_conversation(connect, fake):
    fake.script_reply("Your favourite colour is green, noted.")
    first = await connect()
    await first.send({"t": "text_input", "text": "remember my favourite colour is green"})
    user = await first.until("user_msg")
    await first.until("end", turn=user["turn"])
    await first.close()
    fake.script_reply("It is green.")
    second = await connect()
    await second.send({"t": "text_input", "text": "what colour did I mention"})
    user = await second.until("user_msg")
    await second.until("end", turn=user["turn"])
    history = " ".join(str(m.get("content")) for m in fake.streams[-1].messages)
    assert "remember my favourite colour is green" in history
    assert "Your favourite colour is green, noted." in history


async def test_no_stt_provider_gives_a_clear_error_and_the_session_stays_open(astrbot, connect, fake):
    plugin = astrbot.plugin()
    saved = plugin.settings

    async def no_stt():
        from dataclasses import replace

        plugin.settings = replace(saved, stt_provider_id="")
        cfg = astrbot.lifecycle.astrbot_config
        cfg["provider_stt_settings"]["enable"] = False

    async def restore():
        plugin.settings = saved
        astrbot.lifecycle.astrbot_config["provider_stt_settings"]["enable"] = True

    astrbot.call(no_stt)
    try:
        client = await connect()
        await voice_turn(client, speech_like_pcm(0.5))
        error = await client.until("error")
        assert error["code"] == "STT_NOT_CONFIGURED"
        await client.send({"t": "ping", "data": 7})
        assert (await client.until("pong"))["data"] == 7
    finally:
        astrbot.call(restore)


async def test_a_client_written_from_the_live_api_document_completes_a_turn(astrbot, fake):
    """Only seed frames and keys: start/part/end with one whole-utterance part; reads t/data."""
    import base64
    import io
    import json
    import wave

    import websockets

    fake.script_transcript("hello from the seed client")
    fake.script_reply("Seed clients are welcome here.")
    async with websockets.connect(astrbot.ws_url(token=astrbot.jwt())) as ws:
        await ws.send(json.dumps({"t": "start_speaking", "stamp": "100"}))
        await ws.send(json.dumps({"t": "speaking_part", "data": base64.b64encode(speech_like_pcm(1.0)).decode()}))
        await ws.send(json.dumps({"t": "end_speaking", "stamp": "100"}))
        seen, audio = [], []
        while True:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 15))
            seen.append(msg["t"])
            if msg["t"] == "response":
                with wave.open(io.BytesIO(base64.b64decode(msg["data"]))) as w:
                    audio.append(w.getnframes() / w.getframerate())
            if msg["t"] == "user_msg":
                assert msg["data"]["text"] == "hello from the seed client"
            if msg["t"] == "end":
                break
    assert "bot_text_chunk" in seen and audio and min(audio) > 0
    assert seen.index("user_msg") < seen.index("response") < seen.index("end")


async def test_without_a_chat_model_the_voice_loop_still_answers(astrbot, connect, fake):
    manager = astrbot.lifecycle.provider_manager

    async def disable_model():
        saved[0] = manager.inst_map.pop("fake_chat")
        manager.provider_insts.remove(saved[0])

    async def restore():
        manager.provider_insts.append(saved[0])
        manager.inst_map["fake_chat"] = saved[0]

    saved = [None]
    astrbot.call(disable_model)
    try:
        fake.script_transcript("hello out there")
        client = await connect()
        await voice_turn(client, speech_like_pcm(0.8))
        user = await client.until("user_msg")
        end = await client.until("end", turn=user["turn"])
        assert "No chat model is configured" in end["data"]["text"]
        assert "hello out there" in end["data"]["text"]
        assert any(f["t"] == "response" for f in client.of_turn(user["turn"]))  # said by voice too
        assert fake.streams == []
    finally:
        astrbot.call(restore)


async def test_spoken_command_words_never_run_host_commands(connect, fake):
    """WebChat would run `/stop` for a spoken "stop, ..."; Live Mode sends it to the agent instead."""
    fake.script_transcript("stop please, and tell me a joke")
    fake.script_reply("Here is a joke.")
    client = await connect()
    await voice_turn(client, speech_like_pcm(0.8))
    user = await client.until("user_msg")
    end = await client.until("end", turn=user["turn"])
    assert end["data"]["text"] == "Here is a joke."
    assert "stop please, and tell me a joke" in str(fake.streams[-1].messages[-1]["content"])


async def test_status_for_the_sidebar_view(astrbot):
    import aiohttp

    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{astrbot.base_url}/api/v1/plugins/extensions/astrbot_plugin_live/live/status",
            headers={"Authorization": f"Bearer {astrbot.jwt()}"},
        ) as r:
            body = await r.json()
    data = body.get("data", body)
    assert data["stt_provider"] == "fake_stt" and data["tts_provider"] == "fake_tts"
    assert {"sessions", "busy", "vad_lag_p99_ms", "server_vad", "protocol_version"} <= set(data)


async def test_hung_providers_give_clear_errors_and_the_session_goes_on(connect, fake, tune):
    tune(stt_timeout_s=1.0, tts_timeout_s=1.0)
    try:
        client = await connect()
        fake.stt_delay = 3.0
        fake.script_transcript("too late")
        await voice_turn(client, speech_like_pcm(0.5))
        error = await client.until("error", timeout=10)
        assert error["code"] == "STT_FAILED" and "timed out" in error["data"]
        fake.stt_delay, fake.tts_delay = 0.0, 3.0
        fake.script_reply("This sentence is slow to voice.")
        await client.send({"t": "text_input", "text": "say something"})
        user = await client.until("user_msg")
        end = await client.until("end", turn=user["turn"], timeout=20)
        codes = [f["code"] for f in client.of_turn(user["turn"]) if f["t"] == "error"]
        assert codes == ["TTS_FAILED"]
        assert end["data"]["text"] == "This sentence is slow to voice."
        assert [f["data"]["text"] for f in client.of_turn(user["turn"]) if f["t"] == "bot_text_chunk"] == [
            "This sentence is slow to voice."
        ]
    finally:
        fake.tts_delay = 0.0
