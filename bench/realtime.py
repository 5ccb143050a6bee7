"""The realtime backend against the cascade, side by side in one run (issue #16's benchmark).

    .venv/bin/python bench/run.py --only realtime            # ~5 min; bench/results/realtime.{json,md}
    .venv/bin/python bench/run.py --only realtime --quick    # ~1.5 min; bench/results/quick/

Both backends run in the same booted AstrBot, through the plugin's `/api/v1/live/ws`, with the
same client code and the same utterances. The cascade's fake providers (STT, LLM, TTS) take
`measure.ProviderLatency`; the fake realtime model (`tests/harness/fake_realtime.py`) answers
its first audio after the LLM's time to first token, so each backend gets the same model time
and the cascade adds its STT and TTS hops and its wait for the first clause. Both fakes run on
the server's event loop, and every time is `time.monotonic()` in this one process.

Measured:
- **first audio**: `end_speaking` sent -> the first `response` frame, voice turns (the
  cascade's and the model's answers the same length of audio). The next turn starts once the
  answer has played (a real-time player), so no turn cuts the one before it.
- **interrupt**: an `interrupt` at the first audio of a long answer -> `stop_play` at the
  client, the provider told to stop (the LLM stream closed / `response.cancel` at the model),
  and audio frames of the turn that still arrived after `stop_play`.
- **hot-swap vs cold connect**, with the fake's handshake at a scripted delay: (a) through the
  plugin, a typed turn's first audio when the session it takes is still connecting (`cold`:
  sent at once after `hello`), when the provider ended the session in use and the warm spare
  takes over (`warm`), and on the session in use (`kept`); (b) the client alone:
  `RealtimeSession.open` + `configure` against `RealtimePool.take()`, to the first audio delta.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from live.config import RealtimeBackendSettings
from live.realtime.answerer import REMEMBER_MARGIN_S
from live.realtime.client import RealtimePool, RealtimeSession, RealtimeSettings
from live.realtime.events import AudioDelta, SessionConfig
from tests.harness import fake_providers
from tests.harness.fake_realtime import FakeRealtime, ScriptedResponse, tone_pcm
from tests.harness.live_client import LiveClient, b64

from . import measure
from .stats import ratio, summary

KEY = "sk-bench-realtime"
SIDES = ("cascade", "realtime")


@dataclass(frozen=True)
class Plan:
    rounds: int = 3  # first audio: rounds x the 4 conversations per side
    interrupt_rounds: int = 2  # interrupts: rounds x the 4 conversations per side
    swap_rounds: int = 8  # hot-swap: cold / warm / kept plugin turns, and client-level cold / warm
    model_latency_s: float = measure.ProviderLatency().ttft_s  # the realtime model's time to its first delta
    model_pace: float = 0.25  # wall seconds per second of the model's audio (it generates 4x real time)
    chunk_ms: int = 100  # the model's audio per delta
    created_delay_s: float = 0.250  # handshake: socket up -> session.created (a remote provider's TLS + setup)
    update_delay_s: float = 0.050  # session.update -> session.updated


FULL = Plan()
QUICK = Plan(rounds=1, interrupt_rounds=1, swap_rounds=3)


def model_audio(text: str) -> bytes:
    """The model's answer as long as the cascade's fake TTS makes the same text (24 kHz)."""
    return tone_pcm(max(0.2, len(text) * fake_providers.MS_PER_CHAR / 1000))


# ---------------------------------------------------------------- one voice turn, either backend


@dataclass
class Sample:
    side: str
    conversation: str
    kind: str  # "turn" | "interrupt"
    ok: bool = False
    error: str | None = None
    user_msg_ms: float | None = None
    first_audio_ms: float | None = None
    end_ms: float | None = None
    audio_ms: float = 0.0  # audio of the turn received (played length)
    stop_play_ms: float | None = None  # after the interrupt
    provider_stopped_ms: float | None = None  # after the interrupt: LLM stream closed / response.cancel received
    last_audio_ms: float | None = None  # after the interrupt
    audio_after_stop_play: int = 0
    metrics: dict | None = None


async def voice_turn(
    client: LiveClient, side: str, conversation: str, *, interrupt: bool, stopped_at, timeout: float = 30.0
) -> Sample:
    """What AstrBot's own client does: the utterance in one `speaking_part`; time zero = `end_speaking`.

    `stopped_at(since)`: when the provider was told to stop after `since` (monotonic), or None.
    """
    sample = Sample(side, conversation, "interrupt" if interrupt else "turn")
    stamp = uuid.uuid4().hex[:8]
    await client.send({"t": "start_speaking", "stamp": stamp})
    await client.send({"t": "speaking_part", "data": b64(measure.utterance_pcm())})
    t0 = time.monotonic()
    await client.send({"t": "end_speaking", "stamp": stamp})
    ms = lambda at, since=t0: None if at is None else round((at - since) * 1000, 1)  # noqa: E731
    turn = None
    t_int = stop_at = end_at = None
    audio: list[tuple[float, float]] = []  # (arrival, duration ms)
    try:
        deadline = t0 + timeout
        while end_at is None:
            frame = await client.recv(max(0.05, deadline - time.monotonic()))
            kind, at = frame.get("t"), frame["_at"]
            if turn is not None and frame.get("turn") not in (None, turn):
                continue
            if kind == "error":
                raise RuntimeError(f"error frame: {frame}")
            if kind == "user_msg":
                turn = frame.get("turn")
                sample.user_msg_ms = ms(at)
            elif kind == "response":
                audio.append((at, measure.wav_duration_ms(frame["data"])))
                if interrupt and t_int is None:
                    t_int = time.monotonic()
                    await client.send({"t": "interrupt", "turn": turn})
            elif kind == "stop_play":
                stop_at = at
            elif kind == "end":
                end_at = at
        for frame in await client.drain(0.6 if interrupt else 0.3):
            if frame.get("turn") not in (None, turn):
                continue
            if frame.get("t") == "metrics":
                sample.metrics = frame.get("data")
            elif frame.get("t") == "stop_play" and stop_at is None:
                stop_at = frame["_at"]
            elif frame.get("t") == "response":
                audio.append((frame["_at"], measure.wav_duration_ms(frame["data"])))
    except (TimeoutError, RuntimeError) as exc:
        sample.error = str(exc) or f"timed out; last frames {[f.get('t') for f in client.frames[-8:]]}"
        await client.drain(0.5)
        return sample
    sample.end_ms = ms(end_at)
    sample.audio_ms = round(sum(d for _, d in audio), 1)
    if audio:
        sample.first_audio_ms = ms(audio[0][0])
    if interrupt and t_int is not None:
        sample.stop_play_ms = ms(stop_at, t_int)
        sample.last_audio_ms = ms(max(at for at, _ in audio), t_int)
        sample.audio_after_stop_play = sum(1 for at, _ in audio if stop_at is not None and at > stop_at)
        sample.provider_stopped_ms = ms(await stopped_at(t_int), t_int)
        sample.ok = sample.stop_play_ms is not None
    else:
        sample.ok = sample.first_audio_ms is not None
        if audio:  # a real-time player: the next question comes once this answer has played
            await asyncio.sleep(max(0.0, audio[0][0] + sample.audio_ms / 1000 - time.monotonic()) + 0.3)
    return sample


# ---------------------------------------------------------------- the suite


class Sides:
    """One socket per backend, and what each needs scripted per turn."""

    def __init__(self, astrbot: Any, fake: Any, model: FakeRealtime, plan: Plan) -> None:
        self.astrbot, self.fake, self.model, self.plan = astrbot, fake, model, plan
        self.lat = measure.ProviderLatency()
        self.clients: dict[str, LiveClient] = {}

    async def open(self) -> None:
        for side in SIDES:
            self.clients[side] = await open_plugin(self.astrbot, side)

    async def close(self) -> None:
        for client in self.clients.values():
            with contextlib.suppress(Exception):
                await client.close()

    def script(self, side: str, conv: measure.Conversation) -> None:
        if side == "cascade":
            measure.script(self.fake, conv.question, conv.reply, self.lat)
            return
        with self.model._lock:
            self.model.responses.clear()
            self.model.input_transcripts.clear()
        self.model.hear(conv.question)
        self.model.script(
            ScriptedResponse(conv.reply, audio=model_audio(conv.reply), first_delay=self.plan.model_latency_s,
                             chunk_ms=self.plan.chunk_ms, pace=self.plan.model_pace)
        )  # fmt: skip

    async def stopped_at(self, side: str, since: float, wait: float = 3.0) -> float | None:
        """When the provider was told to stop after `since`: the LLM stream closed, or `response.cancel`."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if side == "cascade":
                closed = [c.finished for c in self.fake.chats if c.closed_early and c.finished and c.finished > since]
            else:
                closed = [r.at for r in list(self.model.cancels) if r.at > since]
            if closed:
                return min(closed)
            await asyncio.sleep(0.02)
        return None

    async def turn(self, side: str, conv: measure.Conversation, *, interrupt: bool) -> Sample:
        self.script(side, conv)
        return await voice_turn(
            self.clients[side], side, conv.name, interrupt=interrupt,
            stopped_at=lambda since: self.stopped_at(side, since),
        )  # fmt: skip


async def open_plugin(astrbot: Any, backend: str, *, settle: bool = True) -> LiveClient:
    url = astrbot.ws_url(
        measure.PLUGIN_WS, token=astrbot.jwt("bench"), conversation_id=f"bench-rt-{uuid.uuid4().hex[:12]}",
        backend=backend,
    )  # fmt: skip
    client = await LiveClient.open(url)
    hello = await client.until("hello", timeout=10)
    if hello["data"].get("backend") != backend:
        raise RuntimeError(f"asked for the {backend} backend, hello says {hello['data'].get('backend')!r}")
    if settle:
        await client.drain(0.1)
    return client


@contextlib.asynccontextmanager
async def realtime_provider(astrbot: Any, plan: Plan):
    """The fake realtime model on the server's loop (as the fake providers are), set as the plugin's provider."""
    model = FakeRealtime(api_key=KEY, created_delay=plan.created_delay_s, update_delay=plan.update_delay_s)
    await asyncio.to_thread(astrbot.call, model.start)
    plugin = astrbot.plugin()
    saved = plugin.settings
    settings = RealtimeBackendSettings(
        url=model.url, api_key=KEY, model="fake-realtime", voice="alloy", transcription_model="whisper-1"
    )

    async def use():
        plugin.settings = replace(saved, realtime=settings)

    async def restore():
        plugin.settings = saved

    await asyncio.to_thread(astrbot.call, use)
    try:
        yield model
    finally:
        await asyncio.to_thread(astrbot.call, restore)
        await asyncio.to_thread(astrbot.call, model.stop)


async def run_suite(
    astrbot: Any, fake: Any, *, plan: Plan = FULL, conversations=measure.CONVERSATIONS, progress=lambda _msg: None
) -> dict:
    """Every part of the comparison; `conversations` are the questions and answers of the first-audio turns
    (the interrupts always cut `measure.LONG_REPLY`)."""
    measure.set_latency(fake, measure.ProviderLatency())
    started = time.monotonic()
    cpu_before = _cpu()
    async with realtime_provider(astrbot, plan) as model:
        sides = Sides(astrbot, fake, model, plan)
        await sides.open()
        samples: list[Sample] = []
        try:
            for side in SIDES:  # a warm-up turn per side, not counted
                await sides.turn(side, conversations[0], interrupt=False)
            for kind, rounds in (("turn", plan.rounds), ("interrupt", plan.interrupt_rounds)):
                for r in range(rounds):
                    for conv in conversations:
                        if kind == "interrupt":
                            conv = measure.Conversation(conv.name, conv.question, measure.LONG_REPLY)
                        order = SIDES if r % 2 == 0 else SIDES[::-1]  # drift hits both sides alike
                        for side in order:
                            s = await sides.turn(side, conv, interrupt=kind == "interrupt")
                            samples.append(s)
                            shown = s.first_audio_ms if kind == "turn" else s.stop_play_ms
                            progress(f"realtime bench: {kind:9s} {side:8s} {conv.name:8s} "
                                     + (f"{shown:6.0f} ms" if s.ok and shown is not None else f"FAILED {s.error}"))  # fmt: skip
        finally:
            await sides.close()
        progress("realtime bench: hot-swap through the plugin")
        swaps = await plugin_swaps(astrbot, model, plan, progress)
        progress("realtime bench: cold connect vs the pool's warm take (client alone)")
        client_level = await client_swaps(model, plan)
    result = summarize(samples, swaps, client_level, plan)
    result["duration_s"] = round(time.monotonic() - started, 1)
    result["this_process_cores"], result["other_processes_cores"] = _cores(cpu_before, _cpu(), result["duration_s"])
    result["samples"] = [asdict(s) for s in samples]
    result["swap_samples"] = swaps
    result["client_swap_samples"] = client_level
    return result


def _cpu() -> tuple[float, float]:
    """CPU seconds used so far: the whole machine, this process (server and client)."""
    import psutil

    machine, mine = psutil.cpu_times(), psutil.Process().cpu_times()
    return machine.user + machine.system, mine.user + mine.system


def _cores(before: tuple[float, float], after: tuple[float, float], seconds: float) -> tuple[float, float]:
    mine = (after[1] - before[1]) / seconds
    return round(mine, 2), round(max(0.0, (after[0] - before[0]) / seconds - mine), 2)


# ---------------------------------------------------------------- hot-swap


async def typed_turn(client: LiveClient, text: str, timeout: float = 20.0) -> dict:
    """A typed turn: text_input sent -> the first audio; its metrics (`realtime_swap`, `realtime_take_ms`)."""
    t0 = time.monotonic()
    await client.send({"t": "text_input", "text": text})
    first = turn = end = metrics = None
    deadline = t0 + timeout
    while metrics is None:
        frame = await client.recv(max(0.05, deadline - time.monotonic()))
        if frame.get("t") == "error":
            raise RuntimeError(f"error frame: {frame}")
        if frame.get("t") == "user_msg" and turn is None:
            turn = frame.get("turn")
        if turn is None or frame.get("turn") != turn:
            continue
        if frame.get("t") == "response" and first is None:
            first = frame["_at"]
        elif frame.get("t") == "end":
            end = frame["_at"]
        elif frame.get("t") == "metrics":
            metrics = frame["data"]
    return {
        "first_audio_ms": None if first is None else round((first - t0) * 1000, 1),
        "end_ms": None if end is None else round((end - t0) * 1000, 1),
        "swap": metrics.get("realtime_swap"),
        "take_ms": metrics.get("realtime_take_ms"),
        "session": metrics.get("realtime_session"),
    }


async def expire_in_use(astrbot: Any, model: FakeRealtime) -> None:
    """The provider ends the session that answered last (its time limit), as OpenAI does at 60 minutes."""
    in_use = [e.connection for e in list(model.received) if e.event.get("type") == "response.create"][-1]
    await asyncio.to_thread(astrbot.call, lambda: model.expire(in_use))
    await asyncio.sleep(0.2)  # the session's reader sees the close


async def plugin_swaps(astrbot: Any, model: FakeRealtime, plan: Plan, progress) -> list[dict]:
    """Per round, on a new connection: a turn sent at once (its session still connecting); a turn after
    the provider ended the session in use (the warm spare takes over); a turn on the session kept; and
    a swap that comes right after an answer played, before the answerer wrote it to the host's history."""
    out: list[dict] = []
    handshake_s = plan.created_delay_s + plan.update_delay_s
    with model._lock:
        model.responses.clear()
        model.input_transcripts.clear()
    for r in range(plan.swap_rounds):
        model.default_response = ScriptedResponse(
            "Here you go.", audio=model_audio("Here you go."), first_delay=plan.model_latency_s, chunk_ms=plan.chunk_ms
        )
        client = await open_plugin(astrbot, "realtime", settle=False)
        try:
            row = {"round": r, "at_connect": await typed_turn(client, "first question")}
            # The answer plays out and is written to the host's history (the answerer writes a completed answer
            # REMEMBER_MARGIN_S after it played) and the next spare is warm, as when a user listens, then asks.
            await asyncio.sleep(max(2 * handshake_s, 0.6 + REMEMBER_MARGIN_S) + 0.5)
            await expire_in_use(astrbot, model)
            row["after_expiry"] = await typed_turn(client, "second question")
            await asyncio.sleep(0.6 + REMEMBER_MARGIN_S + 0.5)
            row["kept"] = await typed_turn(client, "third question")
            await asyncio.sleep(max(2 * handshake_s, 0.6) + 0.2)  # played, but not yet written; the spare warm
            await expire_in_use(astrbot, model)
            row["after_expiry_at_once"] = await typed_turn(client, "fourth question")
        except (TimeoutError, RuntimeError) as exc:
            row = {"round": r, "error": str(exc)}
        finally:
            await client.close()
        out.append(row)
        progress(f"realtime bench: swap round {r}: " + json.dumps({k: v.get("first_audio_ms") if isinstance(v, dict) else v for k, v in row.items()}))  # fmt: skip
        await asyncio.sleep(0.3)
    model.default_response = ScriptedResponse("Okay.")
    return out


async def client_swaps(model: FakeRealtime, plan: Plan) -> list[dict]:
    """`RealtimeSession.open` + `configure` against `RealtimePool.take()`: ask for a session -> first audio delta."""
    settings = RealtimeSettings(url=model.url, api_key=KEY, model="fake-realtime")
    config = SessionConfig(instructions="You are a helpful voice assistant.", voice="alloy", turn_detection="ours")
    answer = ScriptedResponse("Hello.", audio=model_audio("Hello."), first_delay=plan.model_latency_s)

    async def first_audio(session: RealtimeSession, asked: float) -> float:
        model.script(answer)
        await session.send_text("hello")
        await session.create_response()
        while True:
            event = await asyncio.wait_for(session.next_event(), 10)
            if isinstance(event, AudioDelta):
                return round((time.monotonic() - asked) * 1000, 1)
            if event is None:
                raise RuntimeError("the session ended before any audio")

    out: list[dict] = []
    pool = RealtimePool(settings, config)
    pool.start()
    try:
        for r in range(plan.swap_rounds):
            asked = time.monotonic()
            session = await RealtimeSession.open(settings)
            await session.configure(config)
            ready_ms = round((time.monotonic() - asked) * 1000, 1)
            cold = {"session_ms": ready_ms, "first_audio_ms": await first_audio(session, asked)}
            await session.aclose()
            deadline = time.monotonic() + 10
            while not pool.ready and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            asked = time.monotonic()
            session = await pool.take()
            ready_ms = round((time.monotonic() - asked) * 1000, 2)
            warm = {"session_ms": ready_ms, "first_audio_ms": await first_audio(session, asked)}
            await session.aclose()
            out.append({"round": r, "cold": cold, "warm": warm})
    finally:
        await pool.aclose()
    return out


# ---------------------------------------------------------------- results

SWAP_TURNS = {
    "at_connect": "sent at once after `hello` (the session still connecting)",
    "after_expiry": "after the provider ended the session in use (the spare takes over)",
    "kept": "on the session in use",
    "after_expiry_at_once": "the spare takes over right after an answer played (before it is written to history)",
}


def summarize(samples: list[Sample], swaps: list[dict], client_level: list[dict], plan: Plan) -> dict:
    lat = measure.ProviderLatency()
    by: dict[str, dict] = {}
    for side in SIDES:
        turns = [s for s in samples if s.side == side and s.kind == "turn"]
        cuts = [s for s in samples if s.side == side and s.kind == "interrupt"]
        ok_turns = [s for s in turns if s.ok]
        by[side] = {
            "first_audio_ms": summary(s.first_audio_ms for s in ok_turns),
            "user_msg_ms": summary(s.user_msg_ms for s in ok_turns),
            "failed_turns": len(turns) - len(ok_turns),
            "interrupt_stop_play_ms": summary(s.stop_play_ms for s in cuts if s.ok),
            "interrupt_provider_stopped_ms": summary(s.provider_stopped_ms for s in cuts if s.ok),
            "interrupt_provider_stopped": sum(1 for s in cuts if s.provider_stopped_ms is not None),
            "interrupt_audio_after_stop_play": sum(s.audio_after_stop_play for s in cuts),
            "interrupts": len(cuts),
            "failed_interrupts": sum(1 for s in cuts if not s.ok),
        }
    rt, cc = by["realtime"]["first_audio_ms"], by["cascade"]["first_audio_ms"]

    def col(kind: str, key: str) -> list:
        return [row[kind][key] for row in swaps if kind in row and row[kind].get(key) is not None]

    plugin_swap = {
        kind: {"first_audio_ms": summary(col(kind, "first_audio_ms")), "take_ms": summary(col(kind, "take_ms"), 2),
               "swap": sorted({row[kind]["swap"] for row in swaps if kind in row and row[kind].get("swap")})}
        for kind in SWAP_TURNS
    }  # fmt: skip
    plugin_swap["failed_rounds"] = sum(1 for row in swaps if "error" in row)
    client_swap = {
        kind: {k: summary((row[kind][k] for row in client_level), 2) for k in ("session_ms", "first_audio_ms")}
        for kind in ("cold", "warm")
    }
    return {
        "plan": asdict(plan),
        "cascade_providers_ms": {"stt": lat.stt_s * 1000, "llm_ttft": lat.ttft_s * 1000, "llm_token": lat.token_s * 1000,
                                 "tts_per_sentence": lat.tts_s * 1000},  # fmt: skip
        "by_side": by,
        "ratio_first_audio_median": ratio(rt["median"], cc["median"]),
        "ratio_first_audio_p95": ratio(rt["p95"], cc["p95"]),
        "goal_ratio": 0.5,
        "plugin_swap": plugin_swap,
        "client_swap": client_swap,
    }


def _pair(s: dict, digits: int = 0) -> str:
    if not s or s.get("median") is None:
        return "–"
    return f"{s['median']:.{digits}f} / {s['p95']:.{digits}f} (n={s['n']})"


def markdown(result: dict, *, command: str = "", machine: dict | None = None, commit: str = "") -> str:
    plan, by = result["plan"], result["by_side"]
    c, r = by["cascade"], by["realtime"]
    lines = []
    if command:
        lines.append(f"Command: `{command}`")
    if commit:
        lines.append(f"Code measured: {commit}")
    if machine:
        lines.append("Machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()))
    p = result["cascade_providers_ms"]
    lines += [
        "",
        f"Cascade providers: STT {p['stt']:.0f} ms, LLM first token {p['llm_ttft']:.0f} ms then {p['llm_token']:.0f} ms "
        f"per token, TTS {p['tts_per_sentence']:.0f} ms per sentence. Realtime model: first audio delta "
        f"{plan['model_latency_s'] * 1000:.0f} ms after `response.create`, {plan['chunk_ms']} ms of audio per delta; "
        f"handshake {plan['created_delay_s'] * 1000:.0f} ms to `session.created`, "
        f"{plan['update_delay_s'] * 1000:.0f} ms to `session.updated`.",
        "",
        "| median / p95 (ms) | cascade | realtime | realtime / cascade |",
        "|---|---|---|---|",
        f"| first audio after the end of speech | {_pair(c['first_audio_ms'])} | {_pair(r['first_audio_ms'])} | "
        f"{result['ratio_first_audio_median']} / {result['ratio_first_audio_p95']} (goal <= {result['goal_ratio']}) |",
        f"| end of speech -> the user's words (`user_msg`) | {_pair(c['user_msg_ms'])} | {_pair(r['user_msg_ms'])} | |",
        f"| interrupt -> `stop_play` | {_pair(c['interrupt_stop_play_ms'], 1)} | {_pair(r['interrupt_stop_play_ms'], 1)} | |",
        f"| interrupt -> provider told to stop (LLM stream closed / `response.cancel` received) | "
        f"{_pair(c['interrupt_provider_stopped_ms'], 1)} | {_pair(r['interrupt_provider_stopped_ms'], 1)} | |",
        f"| audio frames arriving after `stop_play` (all interrupts) | {c['interrupt_audio_after_stop_play']} of "
        f"{c['interrupts']} runs | {r['interrupt_audio_after_stop_play']} of {r['interrupts']} runs | |",
        f"| failed turns / interrupts | {c['failed_turns']} / {c['failed_interrupts']} | "
        f"{r['failed_turns']} / {r['failed_interrupts']} | |",
        "",
        "Hot-swap, through the plugin (a typed turn: `text_input` sent -> first audio; the session's take in the "
        "turn's metrics):",
        "",
        "| turn | first audio, median / p95 (ms) | waiting for a session (`realtime_take_ms`) | `realtime_swap` |",
        "|---|---|---|---|",
    ]
    sw = result["plugin_swap"]
    for kind, label in SWAP_TURNS.items():
        row = sw[kind]
        lines.append(f"| {label} | {_pair(row['first_audio_ms'])} | {_pair(row['take_ms'], 1)} | "
                     f"{', '.join(row['swap']) or '–'} |")  # fmt: skip
    if sw["failed_rounds"]:
        lines.append(f"\n{sw['failed_rounds']} hot-swap rounds failed (see `swap_samples`).")
    cs = result["client_swap"]
    lines += [
        "",
        "Hot-swap, the client alone (ask for a session -> it is configured / -> the first audio delta of an answer):",
        "",
        "| | session ready, median / p95 (ms) | first audio, median / p95 (ms) |",
        "|---|---|---|",
        f"| cold: `RealtimeSession.open` + `configure` | {_pair(cs['cold']['session_ms'], 1)} | "
        f"{_pair(cs['cold']['first_audio_ms'])} |",
        f"| warm: `RealtimePool.take()` | {_pair(cs['warm']['session_ms'], 2)} | {_pair(cs['warm']['first_audio_ms'])} |",
        "",
        f"Run: {result.get('duration_s', 0):.0f} s; this process (server, both fakes and the client) used "
        f"{result.get('this_process_cores', '?')} cores on average, other processes "
        f"{result.get('other_processes_cores', '?')} cores.",
    ]
    return "\n".join(lines) + "\n"


def write(result: dict, out_dir: Path, *, command: str, machine: dict) -> Path:
    from .turn_taking import code_version

    out_dir.mkdir(parents=True, exist_ok=True)
    commit = code_version()
    result = {**result, "command": command, "machine": machine, "code": commit}
    (out_dir / "realtime.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    md = "# Realtime backend against the cascade\n\n" + markdown(result, command=command, machine=machine, commit=commit)
    (out_dir / "realtime.md").write_text(md, encoding="utf-8")
    return out_dir / "realtime.md"
