"""The realtime client and its pool against the fake realtime server, over real WebSockets (no AstrBot needed).

Timings are only upper bounds on waiting (generous, so a busy machine cannot fail them); what is
asserted is order and content: which handshakes happened before a take, what audio arrived, where
a truncation landed, which error code a failure became.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import replace

import pytest
import pytest_asyncio

from live.audio.resample import resample_pcm16
from live.realtime.client import RealtimeFailure, RealtimePool, RealtimeSession, RealtimeSettings
from live.realtime.events import (
    AudioDelta,
    HistoryItem,
    InputCommitted,
    InputTranscript,
    ItemTruncated,
    RateLimitsUpdated,
    RealtimeError,
    RealtimeErrorCode,
    ResponseDone,
    ResponseStarted,
    SessionConfig,
    SessionReady,
    SpeechStarted,
    SpeechStopped,
    ToolCallRequested,
    ToolSpec,
    TranscriptDelta,
)
from tests.harness.audio import speech_like_pcm
from tests.harness.fake_realtime import FakeRealtime, ScriptedResponse, ScriptedToolCall, tone_pcm

KEY = "sk-test-realtime"
WAIT = 10.0  # upper bound for anything to happen; never a speed assertion
WEATHER = ToolSpec("get_weather", "Weather for a city", {"type": "object", "properties": {"city": {"type": "string"}}})
CONFIG = SessionConfig(
    instructions="You are Neko, a cheerful cat.",
    voice="alloy",
    tools=(WEATHER,),
    input_transcription_model="whisper-1",
    history=(HistoryItem("user", "My name is Ada."), HistoryItem("assistant", "Nice to meet you, Ada!")),
)


@pytest_asyncio.fixture
async def fake():
    server = FakeRealtime(api_key=KEY)
    await server.start()
    yield server
    await server.stop()


@pytest_asyncio.fixture
async def sessions():
    """Opened sessions and pools, closed after the test whatever happened."""
    opened: list = []
    yield opened
    for thing in opened:
        await thing.aclose()


def settings_for(fake: FakeRealtime, **overrides) -> RealtimeSettings:
    values = {
        "url": fake.url,
        "api_key": KEY,
        "model": "fake-realtime",
        "connect_timeout": 5.0,
        "configure_timeout": 5.0,
    }
    return RealtimeSettings(**{**values, **overrides})


async def open_session(fake, sessions, **overrides) -> RealtimeSession:
    session = await RealtimeSession.open(settings_for(fake, **overrides))
    sessions.append(session)
    return session


async def until(predicate, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def collect(session: RealtimeSession, stop=lambda e: isinstance(e, ResponseDone)) -> list:
    """Events up to and including the first that `stop` accepts (bounded)."""
    out = []

    async def run():
        async for event in session.events():
            out.append(event)
            if stop(event):
                return

    await asyncio.wait_for(run(), WAIT)
    return out


def of(events, kind) -> list:
    return [e for e in events if isinstance(e, kind)]


# ---------------------------------------------------------------- settings


def test_settings_build_the_url_and_headers_and_refuse_nonsense():
    ga = RealtimeSettings(url="wss://api.example.com/v1/realtime", api_key="sk-1", model="gpt-realtime")
    assert ga.connect_url() == "wss://api.example.com/v1/realtime?model=gpt-realtime"
    assert ga.headers() == {"Authorization": "Bearer sk-1"}
    assert "sk-1" not in repr(ga)
    beta = RealtimeSettings(url="ws://local:8000/realtime?model=qwen-omni&x=1", model="other", api="beta")
    assert beta.connect_url() == "ws://local:8000/realtime?model=qwen-omni&x=1"  # the URL's own model wins
    assert beta.headers() == {"OpenAI-Beta": "realtime=v1"}
    assert RealtimeSettings(url="ws://h/", beta_header=True).headers() == {"OpenAI-Beta": "realtime=v1"}
    for bad in (
        {"url": "https://api.example.com"},
        {"url": "ws://h", "api": "v2"},
        {"url": "ws://h", "send_timeout": 0},
        {"url": "ws://h", "max_session_age": 60, "rewarm_margin": 60},
    ):
        with pytest.raises(ValueError):
            RealtimeSettings(**bad)


# ---------------------------------------------------------------- one session


@pytest.mark.parametrize("naming", ["ga", "beta"])
async def test_voice_turn_streams_audio_and_transcripts(fake, sessions, naming):
    fake.naming = naming
    answer = tone_pcm(0.65, freq=440)
    fake.script(ScriptedResponse("Hello Ada, how are you today?", audio=answer, chunk_ms=100))
    fake.hear("hi there neko")
    session = await open_session(fake, sessions, api=naming)
    await session.configure(CONFIG)

    handshake = fake.handshakes[0]
    assert handshake.headers["Authorization"] == f"Bearer {KEY}"
    assert handshake.query["model"] == "fake-realtime"
    assert ("OpenAI-Beta" in handshake.headers) == (naming == "beta")
    update = fake.session_updates[0]
    assert update["instructions"] == CONFIG.instructions and update["tools"][0]["name"] == "get_weather"
    if naming == "ga":
        assert update["audio"]["output"]["voice"] == "alloy" and update["audio"]["input"]["turn_detection"] is None
    else:
        assert update["voice"] == "alloy" and update["input_audio_format"] == "pcm16"
    await until(lambda: len(fake.items) == 2, "the seeded history")  # sent after session.update, not awaited
    assert [(i["role"], i["content"][0]["text"]) for i in fake.items] == [
        ("user", "My name is Ada."),
        ("assistant", "Nice to meet you, Ada!"),
    ]

    mic = speech_like_pcm(0.5, rate=16000)
    for i in range(0, len(mic), 640):  # 20 ms frames at 16 kHz, as the engine gets them
        await session.append_audio(mic[i : i + 640], rate=16000)
    await session.commit()
    await session.create_response()
    events = await collect(session)

    # The whole utterance reached the model at 24 kHz (the resampler's tail flushed at commit).
    assert abs(fake.appended_bytes[1] - len(resample_pcm16(mic, 16000, 24000))) <= 4
    committed = of(events, InputCommitted)
    heard = of(events, InputTranscript)
    assert len(committed) == 1 and heard[-1] == InputTranscript("hi there neko", committed[0].item_id, final=True)
    assert "".join(t.text for t in heard if not t.final) == "hi there neko"
    started, done = of(events, ResponseStarted)[0], events[-1]
    audio = of(events, AudioDelta)
    assert b"".join(d.pcm for d in audio) == answer  # byte for byte, in order
    assert len(audio) == 7 and {d.response_id for d in audio} == {started.response_id}
    assert "".join(t.text for t in of(events, TranscriptDelta)) == "Hello Ada, how are you today?"
    assert done.status == "completed" and done.error is None and done.usage.total_tokens == 30
    tail = await collect(session, stop=lambda e: isinstance(e, RateLimitsUpdated))
    assert [limit.name for limit in tail[-1].limits] == ["requests", "tokens"]


async def test_a_16k_provider_gets_the_mic_unresampled(fake, sessions):
    session = await open_session(fake, sessions, api="beta", input_rate=16000)
    mic = speech_like_pcm(0.3, rate=16000)
    await session.append_audio(mic, rate=16000)
    await session.append_audio(tone_pcm(0.1, rate=48000), rate=48000)  # another rate is still converted
    await session.commit()
    await until(lambda: fake.commits, "the commit")
    appended = [r.event["audio"] for r in fake.received if r.event["type"] == "input_audio_buffer.append"]
    assert base64.b64decode(appended[0]) == mic
    assert abs(fake.appended_bytes[1] - len(mic) - 2 * 1600) <= 4  # 100 ms at 16 kHz


async def test_text_turn_and_speech_events(fake, sessions):
    fake.speech_events = True
    fake.script(ScriptedResponse("It is noon."))
    session = await open_session(fake, sessions)
    await session.configure(SessionConfig(instructions="x"))
    assert fake.session_updates[0]["audio"]["input"]["turn_detection"] is None
    await session.append_audio(tone_pcm(0.3))
    await session.commit()
    await session.send_text("what time is it?")
    await session.create_response()
    events = await collect(session)
    started, stopped = of(events, SpeechStarted), of(events, SpeechStopped)
    assert started[0].audio_start_ms == 0 and stopped[0].audio_end_ms == 300
    assert fake.items[-1]["content"] == [{"type": "input_text", "text": "what time is it?"}]
    assert "".join(t.text for t in of(events, TranscriptDelta)) == "It is noon."


async def feed(session: RealtimeSession, pcm: bytes, frame_ms: int = 20) -> None:
    step = 24000 * frame_ms // 1000 * 2
    for i in range(0, len(pcm), step):
        await session.append_audio(pcm[i : i + step])


@pytest.mark.parametrize("naming", ["ga", "beta"])
async def test_the_models_turn_detection_commits_answers_and_barges_in(fake, sessions, naming):
    fake.naming = naming
    fake.hear("tell me a story")
    fake.script(ScriptedResponse("Once upon a time " * 8, audio=tone_pcm(3.0), pace=1.0), ScriptedResponse("Yes?"))
    session = await open_session(fake, sessions, api=naming)
    await session.configure(SessionConfig(instructions="x", turn_detection="server_vad"))
    await feed(session, tone_pcm(0.4) + bytes(2 * 24000 * 6 // 10))  # 400 ms of voice, then 600 ms of quiet
    events = await collect(session, stop=lambda e: isinstance(e, AudioDelta))
    assert [type(e) for e in events if not isinstance(e, InputTranscript | SessionReady)][:4] == [
        SpeechStarted,
        SpeechStopped,
        InputCommitted,
        ResponseStarted,
    ]
    assert of(events, InputTranscript)[-1].text == "tell me a story"
    assert of(events, SpeechStopped)[0].audio_end_ms == 900  # the turn ended after 500 ms of the quiet
    assert "input_audio_buffer.commit" not in fake.received_types()
    assert "response.create" not in fake.received_types()  # the model answered by itself

    await feed(session, tone_pcm(0.1))  # the user talks over the answer
    interrupted = await collect(session, stop=lambda e: isinstance(e, ResponseDone))
    assert of(interrupted, SpeechStarted)
    assert interrupted[-1].status == "cancelled" and interrupted[-1].reason == "turn_detected"


async def test_barge_in_cancels_and_truncates_at_the_heard_ms(fake, sessions):
    fake.script(ScriptedResponse("A long story " * 10, audio=tone_pcm(4.0), chunk_ms=100, pace=1.0))
    session = await open_session(fake, sessions)
    await session.configure(SessionConfig(instructions="x"))
    await session.create_response()
    seen = []

    def third_audio_delta(event) -> bool:
        if isinstance(event, AudioDelta):
            seen.append(event)
        return len(seen) == 3

    events = await collect(session, stop=third_audio_delta)
    audio = of(events, AudioDelta)
    heard_ms = 250  # the client played 250 ms of the 300 ms it got
    await session.cancel_response()
    await session.truncate(audio[0].item_id, 0, heard_ms)
    rest = []
    while not (of(rest, ResponseDone) and of(rest, ItemTruncated)):  # the provider may answer these in either order
        rest += await collect(session, stop=lambda e: isinstance(e, ResponseDone | ItemTruncated))
    done = of(rest, ResponseDone)
    assert done and done[0].status == "cancelled" and done[0].reason == "client_cancelled"
    assert of(rest, ItemTruncated) == [ItemTruncated(audio[0].item_id, 0, heard_ms)]
    truncation = fake.truncations[0]
    assert (truncation.item_id, truncation.content_index, truncation.audio_end_ms) == (audio[0].item_id, 0, heard_ms)
    assert truncation.sent_audio_ms < 4000  # the answer stopped streaming: it was cancelled, not finished
    assert len(fake.cancels) == 1 and fake.cancels[0].at <= truncation.at


@pytest.mark.parametrize("naming", ["ga", "beta"])
async def test_tool_call_round_trip(fake, sessions, naming):
    fake.naming = naming
    fake.script(
        ScriptedResponse(tool_call=ScriptedToolCall("get_weather", '{"city": "Paris"}')),
        ScriptedResponse("It is sunny in Paris."),
    )
    session = await open_session(fake, sessions, api=naming)
    await session.configure(SessionConfig(instructions="x", tools=(WEATHER,)))
    await session.create_response()
    first = await collect(session)
    call = of(first, ToolCallRequested)
    assert len(call) == 1
    assert call[0].name == "get_weather"  # beta servers name it only in the output item: the client fills it in
    assert call[0].parsed_arguments() == {"city": "Paris"}
    assert first[-1].status == "completed" and not of(first, AudioDelta)

    await session.send_tool_result(call[0].call_id, json.dumps({"sky": "sunny", "temp_c": 21}))
    second = await collect(session)
    assert fake.tool_results == [
        {
            "type": "function_call_output",
            "call_id": call[0].call_id,
            "output": '{"sky": "sunny", "temp_c": 21}',
            "id": fake.tool_results[0]["id"],
        }
    ]
    assert fake.received_types()[-2:] == ["conversation.item.create", "response.create"]
    assert "".join(t.text for t in of(second, TranscriptDelta)) == "It is sunny in Paris."
    assert of(second, AudioDelta) and second[-1].status == "completed"


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("setup", "code", "status"),
    [
        ({"auth_failure": "http"}, RealtimeErrorCode.AUTH_FAILED, 401),
        ({"auth_failure": "event"}, RealtimeErrorCode.AUTH_FAILED, None),
        ({"handshake_status": 429}, RealtimeErrorCode.RATE_LIMITED, 429),
        ({"handshake_status": 503}, RealtimeErrorCode.SERVER_ERROR, 503),
    ],
)
async def test_connect_errors_are_mapped(fake, setup, code, status):
    for name, value in setup.items():
        setattr(fake, name, value)
    with pytest.raises(RealtimeFailure) as caught:
        await RealtimeSession.open(settings_for(fake, api_key="sk-wrong"))
    assert caught.value.error.code is code and caught.value.error.http_status == status
    assert caught.value.error.message in str(caught.value)


async def test_unreachable_and_silent_providers(fake):
    with pytest.raises(RealtimeFailure) as caught:
        await RealtimeSession.open(RealtimeSettings(url="ws://127.0.0.1:9/v1/realtime", connect_timeout=5.0))
    assert caught.value.error.code is RealtimeErrorCode.CONNECT_FAILED
    fake.created_delay = 3.0  # accepts the socket, never says session.created in time
    with pytest.raises(RealtimeFailure) as caught:
        await RealtimeSession.open(settings_for(fake, connect_timeout=0.3))
    assert caught.value.error.code is RealtimeErrorCode.TIMEOUT


async def test_response_errors_keep_the_session_usable(fake, sessions):
    fake.script(
        ScriptedResponse(error=("rate_limit_error", "rate_limit_exceeded", "Rate limit reached.")),
        ScriptedResponse("bad words", refuse_after_chunks=1),
        ScriptedResponse(fail=("server_error", "The model crashed.")),
        ScriptedResponse("Fine now."),
    )
    session = await open_session(fake, sessions)
    await session.configure(SessionConfig())
    await session.create_response()
    rate = (await collect(session, stop=lambda e: isinstance(e, RealtimeError)))[-1]
    assert rate.code is RealtimeErrorCode.RATE_LIMITED and rate.retryable and not rate.ends_session

    await session.create_response()
    refused = of(await collect(session), ResponseDone)[0]
    assert refused.status == "incomplete" and refused.error.code is RealtimeErrorCode.REFUSED

    await session.create_response()
    failed = of(await collect(session), ResponseDone)[0]
    assert failed.status == "failed" and failed.error.code is RealtimeErrorCode.SERVER_ERROR
    assert failed.error.provider_message == "The model crashed."

    await session.create_response()
    fine = await collect(session)
    assert fine[-1].status == "completed" and session.usable


async def test_disconnect_mid_response(fake, sessions):
    fake.script(ScriptedResponse("cut off", audio=tone_pcm(2.0), disconnect_after_chunks=3))
    session = await open_session(fake, sessions)
    await session.configure(SessionConfig())
    await session.create_response()
    events = await collect(session, stop=lambda e: isinstance(e, RealtimeError))
    assert len(of(events, AudioDelta)) == 3
    assert events[-1].code is RealtimeErrorCode.DISCONNECTED and events[-1].ends_session
    assert [e async for e in session.events()] == []  # the stream has ended
    assert not session.usable
    with pytest.raises(RealtimeFailure) as caught:
        await session.append_audio(tone_pcm(0.1))
    assert caught.value.error.code is RealtimeErrorCode.DISCONNECTED


async def test_session_expiry_is_one_clear_error(fake, sessions):
    session = await open_session(fake, sessions)
    await session.configure(SessionConfig())
    await fake.expire(1)
    events = await collect(session, stop=lambda e: False)
    errors = of(events, RealtimeError)
    assert [e.code for e in errors] == [RealtimeErrorCode.SESSION_EXPIRED]  # not also a DISCONNECTED
    assert session.ended.code is RealtimeErrorCode.SESSION_EXPIRED


async def test_one_reader_at_a_time_and_a_cancelled_read_loses_nothing(fake, sessions):
    fake.script(ScriptedResponse("One two three."))
    session = await open_session(fake, sessions)
    await session.configure(SessionConfig())
    assert isinstance(await session.next_event(), SessionReady)  # session.created, queued before anyone read
    assert isinstance(await session.next_event(), SessionReady)  # session.updated
    waiting = asyncio.create_task(session.next_event())
    await asyncio.sleep(0)  # the task starts and waits on the empty queue
    with pytest.raises(RuntimeError, match="already reading"):
        await session.next_event()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await session.create_response()
    events = await collect(session)
    assert isinstance(events[0], ResponseStarted) and events[-1].status == "completed"
    assert "".join(t.text for t in of(events, TranscriptDelta)) == "One two three."


async def test_close_is_bounded_and_idempotent(fake):
    session = await RealtimeSession.open(settings_for(fake, close_timeout=1.0))
    await session.aclose()
    await session.aclose()
    assert session.closed.is_set() and not session.usable
    await until(lambda: fake.open_connections == 0, "the server to see the close")


# ---------------------------------------------------------------- the pool


async def test_prewarmed_take_puts_no_handshake_on_the_turn(fake, sessions):
    fake.created_delay = 0.2  # a slow provider handshake, which the turn must not wait for
    fake.update_delay = 0.1
    fake.script(ScriptedResponse("Ready when you are."))
    pool = RealtimePool(settings_for(fake), CONFIG)
    sessions.append(pool)
    pool.start()
    await until(lambda: pool.ready, "a warm spare")
    assert len(fake.handshakes) == 1 and len(fake.session_updates) == 1

    taking = time.monotonic()
    session = await pool.take()
    taken = time.monotonic()
    sessions.append(session)

    assert all(h.at < taking for h in fake.handshakes if h.connection == 1)
    assert not [h for h in fake.handshakes if taking <= h.at <= taken]  # no handshake between asking and having
    assert pool.stats.takes[-1][2] is True  # a spare was ready
    await session.create_response()
    answer = await collect(session)
    assert answer[-1].status == "completed" and of(answer, AudioDelta)
    assert {r.connection for r in fake.received if r.event["type"] == "response.create"} == {1}

    await until(lambda: pool.ready and len(fake.handshakes) == 2, "the next spare")  # take() warmed the next one
    assert fake.handshakes[1].at >= taking  # started by the take, after it was asked for


async def test_history_that_grew_reaches_the_taken_spare_without_a_round_trip(fake, sessions):
    pool = RealtimePool(settings_for(fake), CONFIG)
    sessions.append(pool)
    pool.start()
    await until(lambda: pool.ready, "a warm spare")
    grown = CONFIG.history + (HistoryItem("user", "What's my name?"), HistoryItem("assistant", "Ada!"))
    pool.set_config(replace(CONFIG, history=grown))
    session = await pool.take()
    sessions.append(session)

    def on_taken(kind: str) -> list[dict]:
        return [r.event for r in fake.received if r.connection == 1 and r.event["type"] == kind]

    await until(lambda: len(on_taken("conversation.item.create")) == 4, "the two new turns")
    assert len(on_taken("session.update")) == 1  # persona unchanged: no second update
    assert [e["item"]["content"][0]["text"] for e in on_taken("conversation.item.create")] == [
        "My name is Ada.",
        "Nice to meet you, Ada!",
        "What's my name?",
        "Ada!",
    ]

    pool.set_config(
        replace(CONFIG, instructions="You are Neko, now grumpy.", history=(HistoryItem("user", "new topic"),))
    )
    await session.sync_config(pool.config)
    await until(lambda: len(on_taken("conversation.item.delete")) == 4, "the replaced history")
    assert on_taken("session.update")[-1]["session"]["instructions"] == "You are Neko, now grumpy."
    assert on_taken("conversation.item.create")[-1]["item"]["content"][0]["text"] == "new topic"
    seeded = {e["item"]["id"] for e in on_taken("conversation.item.create")[:4]}
    assert {e["item_id"] for e in on_taken("conversation.item.delete")} == seeded


async def test_spare_is_rewarmed_after_an_error(fake, sessions):
    pool = RealtimePool(settings_for(fake), SessionConfig(instructions="x"))
    sessions.append(pool)
    pool.start()
    await until(lambda: pool.ready, "a warm spare")
    await fake.expire(1)  # the provider ends the idle spare
    await until(lambda: pool.ready and len(fake.handshakes) == 2, "a replacement spare")
    assert pool.stats.replaced == ["ended"]
    assert pool.last_error is None  # the replacement succeeded
    fake.script(ScriptedResponse("Still here."))
    session = await pool.take()
    sessions.append(session)
    await session.create_response()
    assert (await collect(session))[-1].status == "completed"
    assert {r.connection for r in fake.received if r.event["type"] == "response.create"} == {2}


async def test_spare_is_rewarmed_before_it_ages_out(fake, sessions):
    pool = RealtimePool(settings_for(fake, max_session_age=1.2, rewarm_margin=1.0), SessionConfig())
    sessions.append(pool)
    pool.start()
    await until(lambda: "aged" in pool.stats.replaced and pool.ready, "an aged spare replaced")
    await until(lambda: 1 in {number for _, number in fake.closes}, "the old spare closed, not leaked")
    assert len(fake.handshakes) >= 2


async def test_pool_retries_a_rate_limited_provider_then_recovers(fake, sessions):
    fake.handshake_status = 429
    pool = RealtimePool(settings_for(fake), SessionConfig(), retry_delays=(0.05,))
    sessions.append(pool)
    pool.start()
    await until(lambda: len(pool.stats.failures) >= 2, "two failed attempts")
    assert pool.last_error.code is RealtimeErrorCode.RATE_LIMITED and not pool.ready
    fake.handshake_status = None
    session = await pool.take()
    sessions.append(session)
    assert session.usable and pool.last_error is None


async def test_cold_take_with_a_bad_key_fails_with_the_auth_code(fake, sessions):
    pool = RealtimePool(settings_for(fake, api_key="sk-wrong"), SessionConfig())
    sessions.append(pool)
    with pytest.raises(RealtimeFailure) as caught:
        await pool.take(timeout=WAIT)
    assert caught.value.error.code is RealtimeErrorCode.AUTH_FAILED
    assert len(fake.handshakes) == 1  # a bad key is not retried in a loop


async def test_pool_close_ends_the_spare_and_the_warmer(fake):
    pool = RealtimePool(settings_for(fake), SessionConfig())
    pool.start()
    await until(lambda: pool.ready, "a warm spare")
    await pool.aclose()
    assert not pool.ready
    await until(lambda: fake.open_connections == 0, "the spare closed")
    with pytest.raises(RuntimeError):
        pool.start()
