"""Open-LLM-VTuber and N.E.K.O clients against the booted AstrBot, on the same endpoint.

Each test replays the message sequence the project's own client sends and checks,
field by field, the frames that client reads. Frames are keyed by `type` here, so
this file reads the socket directly instead of the harness's `until()`.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
import wave

import numpy as np

from tests.harness.audio import silence_pcm, speech_like_pcm
from tests.harness.streams import story_stream, stream_released

REPLY = "[joy] The sky is blue today, with a few clouds. Tomorrow brings rain. Take an umbrella."
SHOWN = "The sky is blue today, with a few clouds. Tomorrow brings rain. Take an umbrella."
LONG_REPLY = (
    "Once upon a time there was a lighthouse keeper. Every night she climbed the stairs. "
    "She polished the great lamp until it shone. Ships passed safely all winter long. "
    "One night a storm came from the north. The waves rose higher than the tower."
)


async def read(client, timeout: float = 15) -> dict | bytes:
    """The next frame: a dict for JSON text, bytes for binary (both kept in `client.frames`, in order)."""
    raw = await asyncio.wait_for(client.ws.recv(), timeout)
    if isinstance(raw, bytes):
        client.frames.append(raw)
        return raw
    frame = json.loads(raw)
    assert "t" not in frame, f"an AstrBot-dialect frame leaked: {frame}"
    client.frames.append(frame)
    return frame


async def until(client, kind: str, timeout: float = 15, **match) -> dict:
    """Read until a JSON frame of `type` kind (matching `match`) arrives."""
    deadline = time.monotonic() + timeout
    while True:
        frame = await read(client, max(0.01, deadline - time.monotonic()))
        if isinstance(frame, dict) and frame.get("type") == kind and all(frame.get(k) == v for k, v in match.items()):
            return frame


async def collect(client, kind: str, timeout: float = 15, **match) -> list[dict | bytes]:
    """Every frame up to and including the first of `type` kind."""
    start = len(client.frames)
    await until(client, kind, timeout, **match)
    return client.frames[start:]


async def quiet(client, seconds: float = 0.6) -> list:
    got = []
    try:
        while True:
            got.append(await read(client, seconds))
    except (TimeoutError, asyncio.TimeoutError):
        return got


def floats(pcm: bytes) -> list[float]:
    return (np.frombuffer(pcm, "<i2") / 32768.0).round(5).tolist()


def wav_info(b64: str) -> tuple[int, float]:
    with wave.open(io.BytesIO(base64.b64decode(b64))) as w:
        return w.getframerate(), w.getnframes() / w.getframerate()


def of_type(frames, kind: str) -> list[dict]:
    return [f for f in frames if isinstance(f, dict) and f.get("type") == kind]


# ================================================================ Open-LLM-VTuber


async def open_olv(connect, **query):
    client = await connect(protocol="olv", **query)
    greeting = [await read(client) for _ in range(4)]
    return client, greeting


async def test_olv_greeting_and_the_stock_clients_startup_requests(connect, fake):
    client, greeting = await open_olv(connect)
    assert greeting[0] == {"type": "full-text", "text": "Connection established"}
    assert greeting[1]["type"] == "set-model-and-conf" and greeting[1]["conf_name"] == "AstrBot"
    assert greeting[1]["conf_uid"] and greeting[1]["client_uid"] and "model_info" not in greeting[1]
    assert greeting[2] == {"type": "group-update", "members": [], "is_owner": False}
    assert greeting[3] == {"type": "control", "text": "start-mic"}
    for kind in ("fetch-configs", "fetch-backgrounds", "fetch-history-list", "request-init-config", "heartbeat"):
        await client.send({"type": kind})
    answers = [await read(client) for _ in range(5)]
    assert answers[0] == {"type": "config-files", "configs": []}
    assert answers[1] == {"type": "background-files", "files": []}
    assert answers[2] == {"type": "history-list", "histories": []}
    assert answers[3] == greeting[1]
    assert answers[4] == {"type": "heartbeat-ack"}
    await client.send({"type": "frontend-playback-complete"})
    await client.send({"type": "no-such-thing"})
    error = await until(client, "error")
    assert error["code"] == "UNKNOWN_MESSAGE_TYPE" and "no-such-thing" in error["message"]


async def test_olv_voice_turn(connect, fake):
    fake.script_transcript("what is the weather like")
    fake.script_reply(REPLY)
    client, _ = await open_olv(connect)
    utterance = speech_like_pcm(1.0)
    samples = floats(utterance)
    for i in range(0, len(samples), 4096):  # the web client's chunking of one VAD utterance
        await client.send({"type": "mic-audio-data", "audio": samples[i : i + 4096]})
    await client.send({"type": "mic-audio-end", "images": []})
    frames = await collect(client, "control", text="conversation-chain-end")
    kinds = [f.get("type") for f in frames]
    assert frames[0] == {"type": "control", "text": "conversation-chain-start"}
    assert frames[1] == {"type": "full-text", "text": "Thinking..."}
    assert of_type(frames, "user-input-transcription") == [{"type": "user-input-transcription", "text": "what is the weather like"}]
    audio = of_type(frames, "audio")
    assert len(audio) >= 3
    assert " ".join(a["display_text"]["text"] for a in audio) == SHOWN
    assert audio[0]["actions"] == {"expressions": ["joy"]}
    assert all(a["actions"] is None for a in audio[1:])
    for a in audio:
        rate, seconds = wav_info(a["audio"])
        assert rate == 24000 and seconds > 0.3
        assert a["slice_length"] == 20 and a["forwarded"] is False
        assert len(a["volumes"]) == -(-round(seconds * 1000) // 20) and max(a["volumes"]) == 1.0
        assert a["display_text"]["name"] == "AstrBot"
    assert kinds[-3:] == ["backend-synth-complete", "force-new-message", "control"]
    assert kinds.index("user-input-transcription") < kinds.index("audio")
    # the STT got the float samples back as 16 kHz PCM16, and the tag was never voiced
    assert abs(fake.transcriptions[-1]["bytes"] - (len(utterance) + 44)) <= 64
    assert all("[joy]" not in s["input"] for s in fake.speeches)
    await client.send({"type": "frontend-playback-complete"})
    assert of_type(await quiet(client, 0.3), "error") == []


async def test_olv_text_turn_with_pcm16_output_still_gets_one_wav_per_sentence(connect, fake):
    fake.script_reply("Hello there, nice to meet you. I am fine.")
    client, _ = await open_olv(connect, audio_format="pcm16", sample_rate=16000)
    await client.send({"type": "text-input", "text": "how are you", "images": []})
    frames = await collect(client, "control", text="conversation-chain-end")
    assert of_type(frames, "user-input-transcription") == []  # the client shows typed text itself
    audio = of_type(frames, "audio")
    assert [a["display_text"]["text"] for a in audio] == ["Hello there, nice to meet you.", "I am fine."]
    for a in audio:
        rate, seconds = wav_info(a["audio"])
        assert rate == 16000 and abs(seconds - len(a["display_text"]["text"]) * 0.045) < 0.03  # the fake TTS: 45 ms a char
    assert of_type(frames, "backend-synth-complete")
    assert "how are you" in str(fake.streams[-1].messages[-1]["content"])


async def test_olv_interrupt_signal_stops_the_turn_and_keeps_the_heard_text(astrbot, connect, fake):
    client, _ = await open_olv(connect, conversation_id="olv-heard-history")
    fake.script_reply(LONG_REPLY, ttft=0.05, interval=0.08)
    await client.send({"type": "text-input", "text": "tell me a long story"})
    first = await until(client, "audio")
    heard = first["display_text"]["text"]
    await client.send({"type": "interrupt-signal", "text": heard})
    await until(client, "control", text="conversation-chain-end", timeout=5)
    later = await quiet(client, 1.0)
    assert of_type(later, "audio") == [] and of_type(later, "backend-synth-complete") == []
    assert {"type": "control", "text": "interrupt"} not in client.frames  # the client stopped itself
    story = story_stream(fake)
    assert await stream_released(astrbot, story) and story.tokens_sent < len(LONG_REPLY.split())
    fake.script_reply("Sure, what next?")
    await client.send({"type": "text-input", "text": "never mind that"})
    await until(client, "control", text="conversation-chain-end")
    assistant = [str(m["content"]) for m in fake.streams[-1].messages if m["role"] == "assistant"]
    assert assistant and assistant[-1].startswith(heard) and "polished" not in assistant[-1]


async def test_olv_new_text_while_busy_gets_control_interrupt(connect, fake):
    client, _ = await open_olv(connect)
    fake.script_reply(LONG_REPLY, ttft=0.05, interval=0.08)
    await client.send({"type": "text-input", "text": "tell me a long story"})
    await until(client, "audio")
    fake.script_reply("Okay, cats it is.")
    await client.send({"type": "text-input", "text": "talk about cats"})
    frames = await collect(client, "control", text="conversation-chain-end", timeout=10)
    frames += await collect(client, "control", text="conversation-chain-end", timeout=15)
    controls = [f["text"] for f in of_type(frames, "control")]
    assert controls[:3] == ["interrupt", "conversation-chain-end", "conversation-chain-start"]
    assert of_type(frames, "audio")[-1]["display_text"]["text"] == "Okay, cats it is."


# ================================================================ N.E.K.O


def neko_audio(pcm: bytes, frame: int = 480) -> list[dict]:
    samples = np.frombuffer(pcm, "<i2")
    return [
        {"action": "stream_data", "input_type": "audio", "data": samples[i : i + frame].tolist()}
        for i in range(0, samples.size, frame)
    ]


def binary_after_headers(frames, speech_id: str) -> bytes:
    """The binary frames that follow this speech's audio_chunk headers, paired in order."""
    out, pending = b"", 0
    for f in frames:
        if isinstance(f, dict) and f.get("type") == "audio_chunk":
            pending += 1
            assert f["speech_id"] == speech_id
        elif isinstance(f, bytes):
            assert pending == 1, "every binary frame follows exactly one header"
            pending -= 1
            out += f
    return out


async def test_neko_text_turn(connect, fake):
    fake.script_reply(REPLY)
    client = await connect(protocol="neko")
    await client.send({"action": "ping"})
    assert await read(client) == {"type": "pong"}
    await client.send({"action": "start_session", "input_type": "text", "new_session": False, "language": "en"})
    assert await read(client) == {"type": "session_started", "input_mode": "text"}
    await client.send({"action": "stream_data", "input_type": "text", "data": "how is the sky"})
    frames = await collect(client, "system", data="turn end")
    assert of_type(frames, "user_transcript") == []  # typed text is shown by the client itself
    texts = of_type(frames, "gemini_response")
    turn = texts[0]["turn_id"]
    assert texts[0]["isNewMessage"] is True and all(t["isNewMessage"] is False for t in texts[1:])
    assert {t["turn_id"] for t in texts} == {turn}
    assert "".join(t["text"] for t in texts) == SHOWN
    assert of_type(frames, "emotion") == [{"type": "emotion", "emotion": "happy"}]
    audio = binary_after_headers(frames, turn)
    spoken_ms = sum(len(s["input"]) for s in fake.speeches) * 45  # the fake TTS: 45 ms a character
    assert len(audio) % 2 == 0 and abs(len(audio) / 2 / 48 - spoken_ms) < 60  # PCM16 at 48 kHz
    first_audio = next(i for i, f in enumerate(frames) if isinstance(f, bytes))
    first_text = next(i for i, f in enumerate(frames) if isinstance(f, dict) and f.get("type") == "gemini_response")
    assert first_text < first_audio


async def test_neko_push_to_talk_voice_turn(connect, fake):
    fake.script_transcript("what time is it")
    fake.script_reply("It is noon.")
    client = await connect(protocol="neko", vad="off")
    await client.send({"action": "voice_input_control", "event": "lease_sync", "owner": "core",
                       "hard_muted": False, "focus_suppressed": False, "lease_generation": 1})  # fmt: skip
    await client.send({"action": "start_session", "input_type": "audio"})
    assert await read(client) == {"type": "session_started", "input_mode": "audio"}
    for frame in neko_audio(speech_like_pcm(1.0, rate=48000)):  # the desktop worklet: 480 samples, 10 ms
        await client.send(frame)
    await client.send({"action": "end_session"})
    frames = await collect(client, "system", data="turn end")
    assert of_type(frames, "user_transcript") == [{"type": "user_transcript", "text": "what time is it"}]
    turn = of_type(frames, "gemini_response")[0]["turn_id"]
    assert "".join(t["text"] for t in of_type(frames, "gemini_response")) == "It is noon."
    assert binary_after_headers(frames, turn)
    assert abs(fake.transcriptions[-1]["bytes"] - (32000 + 44)) <= 64  # one second, resampled to 16 kHz


async def test_neko_voice_turn_with_server_vad(connect, fake, say):
    """N.E.K.O's realtime mode: the mic streams continuously; the server finds the utterance."""
    fake.script_transcript("what day is it")
    fake.script_reply("It is Tuesday.")
    client = await connect(protocol="neko")
    await client.send({"action": "start_session", "input_type": "audio"})
    assert await read(client) == {"type": "session_started", "input_mode": "audio"}
    pcm = silence_pcm(0.5, 48000) + say("What day is it today?", 48000) + silence_pcm(1.5, 48000)
    for frame in neko_audio(pcm):
        await client.send(frame)
        await asyncio.sleep(0.004)  # about 2x real time: inside the default 200 frames/s limit
    transcript = await until(client, "user_transcript", timeout=20)
    assert transcript["text"] == "what day is it"
    frames = await collect(client, "system", data="turn end")
    assert "".join(t["text"] for t in of_type(frames, "gemini_response")) == "It is Tuesday."
    assert of_type(client.frames, "status") == []  # nothing dropped, nothing refused


async def test_neko_interrupt_names_the_speech_to_drop(connect, fake):
    client = await connect(protocol="neko")
    await client.send({"action": "start_session", "input_type": "text"})
    await until(client, "session_started")
    fake.script_reply(LONG_REPLY, ttft=0.05, interval=0.08)
    await client.send({"action": "stream_data", "input_type": "text", "data": "tell me a long story"})
    header = await until(client, "audio_chunk")
    turn = header["speech_id"]
    fake.script_reply("Fine, cats.")
    await client.send({"action": "stream_data", "input_type": "text", "data": "talk about cats instead"})
    stop = await until(client, "user_activity", timeout=5)
    assert stop == {"type": "user_activity", "interrupted_speech_id": turn}
    frames = await collect(client, "system", data="turn end")  # the stopped turn's end
    frames += await collect(client, "system", data="turn end")  # the new turn
    assert all(f.get("speech_id") != turn for f in of_type(frames, "audio_chunk"))
    assert all(f.get("turn_id") != turn for f in of_type(frames, "gemini_response"))
    new = of_type(frames, "gemini_response")
    assert new[0]["isNewMessage"] is True and "".join(t["text"] for t in new) == "Fine, cats."
    # end_session during a reply stops it too
    fake.script_reply(LONG_REPLY, ttft=0.05, interval=0.08)
    await client.send({"action": "stream_data", "input_type": "text", "data": "another story"})
    third = (await until(client, "audio_chunk"))["speech_id"]
    await client.send({"action": "end_session"})
    assert await until(client, "user_activity", timeout=5) == {"type": "user_activity", "interrupted_speech_id": third}
    assert all(f.get("speech_id") != third for f in of_type(await quiet(client, 1.0), "audio_chunk"))


async def test_neko_bad_frames_answer_status_and_keep_the_socket(connect, fake):
    client = await connect(protocol="neko")
    await client.send({"action": "fly"})
    status = await until(client, "status")
    assert json.loads(status["message"])["code"] == "UNKNOWN_ACTION"
    await client.send_raw("{not json")
    status = await until(client, "status")
    assert json.loads(status["message"])["code"] == "INVALID_MESSAGE_FORMAT"
    await client.send({"action": "stream_data", "input_type": "audio", "data": [1, 2.5]})
    assert json.loads((await until(client, "status"))["message"])["code"] == "INVALID_AUDIO"
    await client.send({"action": "ping"})
    assert await until(client, "pong") == {"type": "pong"}


# ================================================================ refusals


async def test_a_refused_connection_hears_why_in_its_own_dialect(astrbot, connect):
    """Before `hello` the server already answers in the dialect the query names (issue #13)."""
    code, frames = await (await connect(token="not-a-jwt", protocol="olv")).closed()
    assert code == 1008
    assert frames[0]["type"] == "error" and frames[0]["code"] == "UNAUTHORIZED" and frames[0]["message"]
    code, frames = await (await connect(protocol="neko", audio_format="mp3")).closed()
    assert code == 1008 and frames[0]["type"] == "status"
    assert json.loads(frames[0]["message"])["code"] == "INVALID_MESSAGE_FORMAT"
    code, frames = await (await connect(protocol="klingon")).closed()  # no dialect of ours: AstrBot's
    assert code == 1008 and frames[0]["t"] == "error" and frames[0]["code"] == "INVALID_MESSAGE_FORMAT"
    assert "protocol" in frames[0]["data"]


async def test_olv_switch_config_is_unsupported_not_unavailable(connect, fake):
    client, _ = await open_olv(connect)
    await client.send({"type": "switch-config", "file": "other.yaml"})
    error = await until(client, "error")
    assert error["code"] == "UNSUPPORTED"
    await client.send({"type": "heartbeat"})
    assert await until(client, "heartbeat-ack") == {"type": "heartbeat-ack"}


async def test_chat_mode_frames_on_an_olv_socket_are_answered_in_chat_mode(connect, fake):
    client, _ = await open_olv(connect, conversation_id="olv-chat-bind")
    await client.send({"ct": "chat", "t": "bind", "session_id": "olv-chat-bind"})
    bound = await until(client, "session_bound")
    assert bound["ct"] == "chat" and bound["session_id"] == "olv-chat-bind", bound
    await client.send({"ct": "video", "type": "heartbeat"})
    assert (await until(client, "error"))["code"] == "INVALID_MESSAGE_FORMAT"
