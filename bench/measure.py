"""Latency measurements: the plugin's `/api/v1/live/ws` against the host's built-in
`/api/v1/live-chat/ws`, same scripted conversations, same fake providers, one client.

Every coroutine here takes the harness's `BootedAstrBot` and `FakeProviders` and runs on
the caller's event loop (the server has its own loop in its own thread). All times are
`time.monotonic()`: the fake providers live in this same process, so their request records
and the client's clock agree to the microsecond.

A voice turn is what AstrBot's own client does: `start_speaking`, the whole utterance in one
`speaking_part`, `end_speaking`. Time zero of a turn is the moment `end_speaking` is sent.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import time
import uuid
import wave
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

from tests.harness.audio import speech_like_pcm
from tests.harness.fake_providers import _tokens
from tests.harness.live_client import LiveClient, b64

from . import trace
from .stats import ratio, summary

PLUGIN_WS = "/api/v1/live/ws"
BUILTIN_WS = "/api/v1/live-chat/ws"
SIDES = ("plugin", "builtin")


@dataclass(frozen=True)
class ProviderLatency:
    """What the fake providers are told to take: realistic cloud figures."""

    stt_s: float = 0.150  # whole transcription request
    ttft_s: float = 0.300  # LLM time to first token
    token_s: float = 0.030  # LLM time between tokens
    tts_s: float = 0.120  # per sentence, before the audio is returned


@dataclass(frozen=True)
class Conversation:
    name: str
    question: str  # what the fake STT hears
    reply: str  # what the fake LLM streams back


CONVERSATIONS = (
    Conversation(
        "weather",
        "what is the weather like today",
        "Sure, it's sunny and warm today, around twenty-four degrees. Tomorrow it will cloud over "
        "and rain in the afternoon. Take an umbrella if you go out.",
    ),
    Conversation(
        "greeting",
        "hi how are you",
        "Hi! I'm doing great, thanks for asking. It's been a quiet morning here. How about you?",
    ),
    Conversation(
        "explain",
        "why is the sky blue",
        "The sky looks blue because air molecules scatter short blue wavelengths of sunlight much more "
        "strongly than the longer red ones. At sunset the light travels through more air, so the blue is "
        "scattered away and reds remain.",
    ),
    Conversation(
        "chinese",
        "今天天气怎么样",
        "好的，今天天气晴朗，气温大约二十四度。明天下午可能会下雨，出门记得带伞。",
    ),
)

LONG_REPLY = (
    "Once upon a time there was a lighthouse keeper who lived alone on a rocky island. Every night she "
    "climbed the stairs and polished the great lamp until it shone. Ships passed safely all winter long. "
    "One night a storm came from the north and the waves rose higher than the tower. Still the lamp kept "
    "burning until the morning came, and the sailors never forgot her."
)


@lru_cache(maxsize=1)
def utterance_pcm() -> bytes:
    """1.2 s of speech-shaped audio: the fake STT does not listen, it only needs a WAV."""
    return speech_like_pcm(1.2)


def wav_duration_ms(data_b64: str) -> float:
    raw = base64.b64decode(data_b64)
    with wave.open(io.BytesIO(raw)) as w:
        return 1000.0 * w.getnframes() / w.getframerate()


def playback_gaps_ms(responses: list[tuple[float, float]]) -> list[float]:
    """Silence a real-time player hears between consecutive sentences.

    `responses`: (arrival s, duration ms) per sentence, in order. Sentence n+1 can start at
    the end of sentence n's playback, which itself started when n arrived or when n-1 ended,
    whichever is later. The gap is how late n+1 arrives for that (0 when it was already there).
    """
    gaps: list[float] = []
    play_end: float | None = None
    for at, dur_ms in responses:
        start = at if play_end is None else max(at, play_end)
        if play_end is not None:
            gaps.append(max(0.0, at - play_end) * 1000)
        play_end = start + dur_ms / 1000
    return gaps


# ---------------------------------------------------------------- host toggles


@contextlib.asynccontextmanager
async def builtin_ready(astrbot: Any):
    """What the host's built-in live backend needs, on the booted instance, restored after.

    `run_live_agent` voices only with the session TTS provider, which AstrBot resolves only when
    `provider_tts_settings.enable` is on; STT is `stt_provider_insts[0]`, so the fake STT goes first.
    """

    async def enable():
        conf = astrbot.lifecycle.astrbot_config
        manager = astrbot.lifecycle.provider_manager
        saved = (conf["provider_tts_settings"].get("enable"), list(manager.stt_provider_insts))
        conf["provider_tts_settings"]["enable"] = True
        fake = [p for p in manager.stt_provider_insts if p.meta().id == "fake_stt"]
        manager.stt_provider_insts[:] = fake + [p for p in manager.stt_provider_insts if p not in fake]
        return saved

    async def restore(saved):
        conf = astrbot.lifecycle.astrbot_config
        conf["provider_tts_settings"]["enable"] = saved[0]
        astrbot.lifecycle.provider_manager.stt_provider_insts[:] = saved[1]

    saved = await asyncio.to_thread(astrbot.call, enable)
    try:
        yield
    finally:
        await asyncio.to_thread(astrbot.call, lambda: restore(saved))


def set_latency(fake: Any, lat: ProviderLatency) -> None:
    fake.stt_delay = lat.stt_s
    fake.tts_delay = lat.tts_s
    fake.default_ttft = lat.ttft_s
    fake.default_interval = lat.token_s


def script(fake: Any, question: str, reply: str, lat: ProviderLatency) -> None:
    with fake._lock:
        fake.replies.clear()
        fake.transcripts.clear()
    fake.script_transcript(question)
    fake.script_reply(reply, ttft=lat.ttft_s, interval=lat.token_s)


async def open_side(astrbot: Any, side: str, username: str = "bench") -> LiveClient:
    token = astrbot.jwt(username)
    if side == "plugin":
        url = astrbot.ws_url(PLUGIN_WS, token=token, conversation_id=f"bench-{uuid.uuid4().hex[:12]}")
        client = await LiveClient.open(url)
        await client.until("hello", timeout=10)
        await client.drain(0.1)
        return client
    return await LiveClient.open(astrbot.ws_url(BUILTIN_WS, token=token))


# ---------------------------------------------------------------- one turn


@dataclass
class TurnSample:
    side: str
    conversation: str
    t0: float  # end_speaking sent (monotonic s)
    ok: bool = False
    error: str | None = None
    user_msg_ms: float | None = None
    first_audio_ms: float | None = None
    end_ms: float | None = None
    responses: list[tuple[float, float]] = field(default_factory=list)  # (ms after t0, duration ms)
    gaps_ms: list[float] = field(default_factory=list)
    provider: dict = field(default_factory=dict)  # fake-side timings of the first clause
    overhead_ms: float | None = None
    breakdown: dict = field(default_factory=dict)
    plugin_metrics: dict | None = None
    interrupt: dict | None = None

    def as_dict(self) -> dict:
        return asdict(self)


async def voice_turn(
    astrbot: Any,
    fake: Any,
    client: LiveClient,
    side: str,
    conv: Conversation,
    lat: ProviderLatency,
    *,
    interrupt: bool = False,
    timeout: float = 30.0,
) -> TurnSample:
    """One scripted voice turn on an open socket; with `interrupt`, barge in at the first audio."""
    marks = (len(fake.transcriptions), len(fake.chats), len(fake.speeches))
    script(fake, conv.question, conv.reply, lat)
    stamp = uuid.uuid4().hex[:8]
    await client.send({"t": "start_speaking", "stamp": stamp})
    await client.send({"t": "speaking_part", "data": b64(utterance_pcm())})
    t0 = time.monotonic()
    await client.send({"t": "end_speaking", "stamp": stamp})
    sample = TurnSample(side, conv.name, t0)
    turn: str | None = None
    responses: list[tuple[float, str]] = []
    t_int: float | None = None
    stop_at: float | None = None
    end_at: float | None = None
    after_stop: list[str] = []
    deadline = t0 + timeout
    try:
        while end_at is None:
            frame = await client.recv(max(0.05, deadline - time.monotonic()))
            kind, at = frame.get("t"), frame["_at"]
            if side == "plugin" and turn is not None and frame.get("turn") not in (None, turn):
                continue
            if kind == "error":
                raise RuntimeError(f"error frame: {frame}")
            if kind == "user_msg":
                turn = frame.get("turn")
                sample.user_msg_ms = (at - t0) * 1000
            elif kind == "response":
                responses.append((at, frame["data"]))
                if interrupt and t_int is None:
                    t_int = time.monotonic()
                    await client.send({"t": "interrupt", **({"turn": turn} if turn else {})})
            elif kind == "stop_play":
                stop_at = at
            elif kind == "end":
                end_at = at
        # what still comes: plugin `metrics` (completed turns), builtin trailing `metrics`, stragglers
        quiet = 0.6 if interrupt else 0.25
        for frame in await client.drain(quiet):
            if side == "plugin" and frame.get("turn") not in (None, turn):
                continue
            kind = frame.get("t")
            if kind == "metrics" and side == "plugin":
                sample.plugin_metrics = frame.get("data")
            elif kind == "stop_play" and stop_at is None:
                stop_at = frame["_at"]
            elif kind == "response":
                responses.append((frame["_at"], frame["data"]))
            if stop_at is not None and frame["_at"] > stop_at and kind not in ("end", "state", "metrics"):
                after_stop.append(kind)
    except TimeoutError:
        sample.error = f"timed out; last frames {[f.get('t') for f in client.frames[-8:]]}"
        return sample
    except RuntimeError as exc:
        sample.error = str(exc)
        await client.drain(0.5)
        return sample
    sample.end_ms = (end_at - t0) * 1000
    sample.responses = [((at - t0) * 1000, wav_duration_ms(data)) for at, data in responses]
    if responses:
        sample.first_audio_ms = sample.responses[0][0]
        if not interrupt:
            durations = [d for _, d in sample.responses]
            sample.gaps_ms = playback_gaps_ms([(at, d) for (at, _), d in zip(responses, durations)])
    chat = await _chat_record(fake, marks[1])
    sample.provider, sample.breakdown, sample.overhead_ms = _first_clause_accounting(
        fake, marks, chat, conv.reply, t0, responses[0][0] if responses else None
    )
    if interrupt:
        sample.interrupt = _interrupt_facts(t_int, stop_at, end_at, responses, chat, conv.reply, after_stop)
    sample.ok = sample.first_audio_ms is not None
    return sample


async def _chat_record(fake: Any, since: int, wait: float = 6.0) -> Any:
    """The LLM stream of this turn, once the fake has seen it end (normally or closed early)."""
    deadline = time.monotonic() + wait
    while True:
        streams = [c for c in fake.chats[since:] if c.stream]
        if streams and streams[0].finished is not None:
            return streams[0]
        if time.monotonic() > deadline:
            return streams[0] if streams else None
        await asyncio.sleep(0.02)


def _first_clause_accounting(fake, marks, chat, reply: str, t0: float, first_audio_at: float | None):
    """Split end_speaking -> first audio into provider time and everything else.

    provider = STT request + LLM (request -> the token after which the first clause was sent to
    TTS) + TTS of that clause. What remains is the live stack's own time: WAV assembly and
    upload, the host pipeline up to the LLM call, segmentation, and delivery to the client.
    """
    stts = fake.transcriptions[marks[0] :]
    speeches = fake.speeches[marks[2] :]
    if not stts or chat is None or not speeches or first_audio_at is None or not chat.token_at:
        return {}, {}, None
    stt, tts = stts[0], speeches[0]
    if "started" not in stt or "done" not in tts:
        return {}, {}, None
    cut = max((i for i, at in enumerate(chat.token_at) if at <= tts["at"]), default=None)
    if cut is None:
        return {}, {}, None
    text_complete = _token_completing(reply, tts["input"])
    provider = {
        "stt_ms": (stt["finished"] - stt["started"]) * 1000,
        "llm_ttft_ms": (chat.token_at[0] - chat.started) * 1000,
        "llm_to_first_clause_ms": (chat.token_at[cut] - chat.started) * 1000,
        "tts_first_clause_ms": (tts["done"] - tts["at"]) * 1000,
        "first_clause": tts["input"],
        "first_clause_tokens": cut + 1,
        # LLM time spent waiting for tokens after the clause's text was complete (segmenter lookahead)
        "lookahead_ms": (chat.token_at[cut] - chat.token_at[text_complete]) * 1000
        if text_complete is not None and text_complete <= cut
        else None,
    }
    breakdown = {
        "ingest_ms": (stt["started"] - t0) * 1000,  # end_speaking -> STT request
        "stt_to_llm_ms": (chat.started - stt["finished"]) * 1000,  # transcript -> LLM request
        "clause_to_tts_ms": (tts["at"] - chat.token_at[cut]) * 1000,  # clause token -> TTS request
        "tts_to_client_ms": (first_audio_at - tts["done"]) * 1000,  # TTS reply -> audio at the client
    }
    provider_total = provider["stt_ms"] + provider["llm_to_first_clause_ms"] + provider["tts_first_clause_ms"]
    overhead = (first_audio_at - t0) * 1000 - provider_total
    # stt_to_llm split with the host trace points (when installed): live stack | AstrBot pipeline | SDK
    pipe = trace.first_after("pipeline", stt["finished"], chat.started)
    create = trace.first_after("llm_create", pipe, chat.started) if pipe is not None else None
    if pipe is not None and create is not None:
        breakdown["transcript_to_pipeline_ms"] = (pipe - stt["finished"]) * 1000
        breakdown["host_pipeline_ms"] = (create - pipe) * 1000
        breakdown["llm_sdk_send_ms"] = (chat.started - create) * 1000
        breakdown["live_stack_ms"] = overhead - breakdown["host_pipeline_ms"] - breakdown["llm_sdk_send_ms"]
    return provider, breakdown, overhead


def _token_completing(reply: str, clause: str) -> int | None:
    """Index of the LLM token that completes `clause` (the reply's first TTS input)."""
    want = "".join(clause.split())
    seen = ""
    for i, token in enumerate(_tokens(reply)):
        seen += "".join(token.split())
        if seen.startswith(want):
            return i
    return None


def _interrupt_facts(t_int, stop_at, end_at, responses, chat, reply, after_stop) -> dict:
    ms = lambda at: None if at is None or t_int is None else (at - t_int) * 1000
    after = [at for at, _ in responses if t_int is not None and at > t_int]
    last_audio = max((at for at, _ in responses), default=None)
    return {
        "stop_play_ms": ms(stop_at),
        "llm_closed_early": bool(chat and chat.closed_early),
        "llm_finished_ms": ms(chat.finished) if chat and chat.finished else None,
        "llm_closed_ms": ms(chat.finished) if chat and chat.closed_early and chat.finished else None,
        "tokens_sent": chat.tokens_sent if chat else None,
        "tokens_total": len(_tokens(reply)),
        "audio_after_interrupt": len(after),
        "last_audio_ms": ms(last_audio),
        "end_ms": ms(end_at),
        "stop_play_after_last_audio": None if stop_at is None or last_audio is None else stop_at > last_audio,
        "frames_after_stop_play": after_stop,
        # host trace: each agent-stop request and how many active pipeline events it reached
        "agent_stop_requests": trace.stop_requests(t_int, time.monotonic()) if t_int is not None else [],
    }


# ---------------------------------------------------------------- suites


async def run_turns(
    astrbot: Any,
    fake: Any,
    *,
    conversations=CONVERSATIONS,
    rounds: int = 1,
    lat: ProviderLatency = ProviderLatency(),
    sides=SIDES,
    interrupt: bool = False,
    reply: str | None = None,
    warmup: bool = True,
    progress=lambda _msg: None,
) -> list[TurnSample]:
    """`rounds` x `conversations` voice turns per side, the sides alternating turn by turn.

    One socket per side for the whole suite (the built-in keeps no memory across sockets;
    the plugin gets a fresh conversation id). A warm-up turn per side is not counted.
    """
    set_latency(fake, lat)
    traced = await asyncio.to_thread(astrbot.call, _install_trace)
    clients = {side: await open_side(astrbot, side) for side in sides}
    samples: list[TurnSample] = []
    try:
        plan = [(conv, side) for conv in conversations for side in sides]
        if warmup:
            for side in sides:
                await _one(astrbot, fake, clients[side], side, conversations[0], lat, interrupt=False, reply=None)
        for r in range(rounds):
            for i, (conv, side) in enumerate(plan):
                if r % 2:  # alternate who goes first, so drift hits both sides alike
                    side = sides[len(sides) - 1 - sides.index(side)] if len(sides) > 1 else side
                s = await _one(astrbot, fake, clients[side], side, conv, lat, interrupt=interrupt, reply=reply)
                samples.append(s)
                progress(f"{'interrupt' if interrupt else 'turn'} {side:7s} {conv.name:8s} "
                         + (f"first audio {s.first_audio_ms:6.0f} ms" if s.first_audio_ms else f"FAILED {s.error}"))  # fmt: skip
    finally:
        for client in clients.values():
            with contextlib.suppress(Exception):
                await client.close()
        if traced:
            await asyncio.to_thread(astrbot.call, _uninstall_trace)
    return samples


async def _install_trace() -> bool:
    return trace.install()


async def _uninstall_trace() -> None:
    trace.uninstall()


async def _one(astrbot, fake, client, side, conv, lat, *, interrupt, reply) -> TurnSample:
    if reply is not None:
        conv = Conversation(conv.name, conv.question, reply)
    if side == "builtin":
        async with builtin_ready(astrbot):
            return await voice_turn(astrbot, fake, client, side, conv, lat, interrupt=interrupt)
    return await voice_turn(astrbot, fake, client, side, conv, lat, interrupt=interrupt)


def summarize_turns(samples: list[TurnSample]) -> dict:
    """First audio, overhead (with its breakdown) and gaps per side; the plugin/built-in ratio."""
    out: dict[str, Any] = {}
    for side in SIDES:
        mine = [s for s in samples if s.side == side and s.ok]
        if not mine and not any(s.side == side for s in samples):
            continue
        parts = {k: summary([s.breakdown.get(k) for s in mine]) for k in
                 ("ingest_ms", "stt_to_llm_ms", "transcript_to_pipeline_ms", "host_pipeline_ms", "llm_sdk_send_ms",
                  "clause_to_tts_ms", "tts_to_client_ms", "live_stack_ms")}  # fmt: skip
        prov = {k: summary([s.provider.get(k) for s in mine]) for k in
                ("stt_ms", "llm_ttft_ms", "llm_to_first_clause_ms", "tts_first_clause_ms", "lookahead_ms")}  # fmt: skip
        gaps = [g for s in mine for g in s.gaps_ms]
        out[side] = {
            "first_audio_ms": summary([s.first_audio_ms for s in mine]),
            "first_audio_by_conversation": {
                c: summary([s.first_audio_ms for s in mine if s.conversation == c])
                for c in dict.fromkeys(s.conversation for s in mine)
            },
            "overhead_ms": summary([s.overhead_ms for s in mine]),
            "overhead_breakdown_ms": parts,
            "provider_ms": prov,
            "gap_ms": summary(gaps),
            "gaps_over_10ms": sum(1 for g in gaps if g > 10),
            "failed": sum(1 for s in samples if s.side == side and not s.ok),
        }
    if "plugin" in out and "builtin" in out:
        p, b = out["plugin"]["first_audio_ms"], out["builtin"]["first_audio_ms"]
        out["ratio_first_audio_median"] = ratio(p["median"], b["median"])
        out["ratio_first_audio_p95"] = ratio(p["p95"], b["p95"])
        out["ratio_by_conversation"] = {
            c: ratio(v["median"], out["builtin"]["first_audio_by_conversation"].get(c, {}).get("median"))
            for c, v in out["plugin"]["first_audio_by_conversation"].items()
        }
    return out


def summarize_interrupts(samples: list[TurnSample]) -> dict:
    out: dict[str, Any] = {}
    for side in SIDES:
        facts = [s.interrupt for s in samples if s.side == side and s.interrupt]
        if not facts:
            continue
        out[side] = {
            "stop_play_ms": summary([f["stop_play_ms"] for f in facts]),
            "stop_play_received": sum(1 for f in facts if f["stop_play_ms"] is not None),
            "llm_closed_ms": summary([f["llm_closed_ms"] for f in facts]),
            "llm_closed_early": sum(1 for f in facts if f["llm_closed_early"]),
            "llm_finished_ms": summary([f["llm_finished_ms"] for f in facts]),
            "audio_after_interrupt": summary([f["audio_after_interrupt"] for f in facts], 0),
            "last_audio_ms": summary([f["last_audio_ms"] for f in facts]),
            "end_ms": summary([f["end_ms"] for f in facts]),
            "stop_play_after_last_audio": sum(1 for f in facts if f["stop_play_after_last_audio"]),
            "frames_after_stop_play": sum(len(f["frames_after_stop_play"]) for f in facts),
            "agent_stop_requested": sum(1 for f in facts if f.get("agent_stop_requests")),
            "agent_stop_reached_no_event": sum(
                1 for f in facts if f.get("agent_stop_requests") and not any(f["agent_stop_requests"])
            ),
            "tokens_sent_of_total": summary([f["tokens_sent"] / f["tokens_total"] for f in facts if f["tokens_sent"] is not None], 2),
            "runs": len(facts),
        }  # fmt: skip
    return out
