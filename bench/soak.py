"""Soak: many live sessions for many minutes, with turns and barge-ins; nothing may fail or grow.

    .venv/bin/python bench/soak.py                          # 200 sessions, 10 minutes (defaults)
    .venv/bin/python bench/soak.py --sessions 20 --minutes 1  # a quick proof that it works

Boots a real AstrBot (core + dashboard) with this plugin and the fake OpenAI-compatible providers
in this process (tests/harness), like bench/run.py; loopback only, bounded in time. The load runs
in a separate process (no shared GIL): every session streams a real-time microphone (PCM16 16 kHz,
20 ms binary frames, server VAD on) whose cycle holds one spoken question every `--turn-every`
seconds (random phase per session), so server VAD cuts an utterance, the fake STT hears a
question and a whole turn runs: LLM stream, speech stage, audio back. A share of the answers
(`--interrupt-share`) is interrupted at their first audio, with `played_ms`, as a listener would.

It reports errors (error frames by code, dropped connections, failed connects), turns completed
and interrupted, the server's RSS (this process) and the tasks on AstrBot's loop over time, and
writes JSON + Markdown to bench/results/soak-<sessions>x<minutes>m.{json,md}. Pass: no error,
RSS growth after warm-up < 5 %, every session connected, tasks back to their baseline at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.capacity import end_process, recv_from  # noqa: E402

PLUGIN_CONFIG = {"stt_provider_id": "fake_stt", "tts_provider_id": "fake_tts"}
QUESTION = "what is the weather like today"
ANSWER = "It is sunny and warm today, around twenty degrees. Tomorrow brings a little rain."
FRAME_MS = 20
SLOT_MS = 5  # the ticker spreads sessions over the frame period, as independent browsers are
PING_EVERY_S = 5.0
RSS_GROWTH_LIMIT = 0.05
SAMPLE_EVERY_S = 5.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=200)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--turn-every", type=float, default=30.0, metavar="S", help="seconds between a session's questions")
    ap.add_argument("--interrupt-share", type=float, default=0.3, help="share of answers cut at their first audio")
    ap.add_argument("--warmup", type=float, default=None, metavar="S",
                    help="seconds before the RSS baseline (default: a fifth of the run, 10-120 s, but at least "
                         "two question cycles and at most half the run)")  # fmt: skip
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    ap.add_argument("--tracemalloc", action="store_true",
                    help="diagnose growth: trace allocations from the warm-up on and report where the memory "
                         "still held at the end was allocated (slows the server)")  # fmt: skip
    return ap.parse_args(argv)


def log(msg: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the load (its own process)


def microphone_cycle(seconds: float, seed: int = 5) -> tuple[bytes, str]:
    """`seconds` of a -60 dBFS noise floor with one spoken question at 0.5 s (espeak-ng if present)."""
    import numpy as np

    from bench.capacity import microphone_stream

    one, source = microphone_stream(seed)  # a 15 s cycle with one sentence at 0.5 s
    pcm = np.frombuffer(one, "<i2")
    total = int(seconds * 16000)
    if total > pcm.size:
        rng = np.random.default_rng(seed)
        pcm = np.concatenate([pcm, rng.normal(0, 30, total - pcm.size).astype("<i2")])
    return pcm[:total].astype("<i2").tobytes(), source


class _Session:
    def __init__(self, ws: Any, offset: int, rng: random.Random) -> None:
        self.ws = ws
        self.transport = ws.transport
        self.offset = offset
        self.rng = rng
        self.counts: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.interrupted: set[str] = set()
        self.answered: set[str] = set()  # turns whose first audio arrived
        self.dropped: str | None = None


async def _read(session: _Session, share: float) -> None:
    try:
        async for raw in session.ws:
            if isinstance(raw, bytes):
                continue
            frame = json.loads(raw)
            kind = frame.get("t", "?")
            session.counts[kind] = session.counts.get(kind, 0) + 1
            if kind == "end" and (frame.get("data") or {}).get("interrupted"):
                session.counts["end_interrupted"] = session.counts.get("end_interrupted", 0) + 1
            if kind == "error":
                code = str(frame.get("code") or "")
                session.errors[code] = session.errors.get(code, 0) + 1
            elif kind == "response":
                turn = frame.get("turn")
                if turn and turn not in session.answered:
                    session.answered.add(turn)
                    if session.rng.random() < share:  # a listener who cuts in after the first sentence
                        session.interrupted.add(turn)
                        await session.ws.send(
                            json.dumps({"t": "interrupt", "turn": turn, "played_ms": int(frame.get("duration_ms") or 0)})
                        )
    except Exception as exc:  # noqa: BLE001 (a dropped connection is counted, not fatal)
        session.dropped = f"{type(exc).__name__}: {exc}"[:200]


async def _load(params: dict, pipe: Any) -> None:
    import websockets

    from bench.loadgen import build_stream, ws_client_frame

    frames = build_stream(params["pcm"])
    rng = random.Random(11)
    sessions: list[_Session] = []
    failures: list[str] = []
    limit = asyncio.Semaphore(16)

    async def connect(url: str) -> None:
        async with limit:
            try:
                ws = await websockets.connect(url, max_size=64 * 1024 * 1024, open_timeout=60, ping_interval=None)
                hello = json.loads(await asyncio.wait_for(ws.recv(), 30))
                assert hello.get("t") == "hello", hello
            except Exception as exc:  # noqa: BLE001 (reported)
                failures.append(f"{type(exc).__name__}: {exc}"[:200])
                return
        sessions.append(_Session(ws, rng.randrange(len(frames)), random.Random(rng.random())))

    t0 = time.monotonic()
    await asyncio.gather(*(connect(u) for u in params["urls"]))
    readers = [asyncio.create_task(_read(s, params["interrupt_share"])) for s in sessions]
    pipe.send({"event": "connected", "sessions": len(sessions), "failures": failures[:5],
               "failed": len(failures), "connect_s": time.monotonic() - t0})  # fmt: skip
    slots = FRAME_MS // SLOT_MS
    groups = [sessions[i::slots] for i in range(slots)]
    ping_every = int(PING_EVERY_S * 1000 / SLOT_MS)
    start = time.monotonic()
    stop_at = start + params["duration_s"]
    tick = 0
    sent = 0
    while True:
        due = start + tick * SLOT_MS / 1000
        if (wait := due - time.monotonic()) > 0:
            await asyncio.sleep(wait)
        if time.monotonic() >= stop_at or pipe.poll():
            break
        frame_no = tick // slots
        for s in groups[tick % slots]:
            if s.transport.is_closing():
                continue
            s.transport.write(frames[(frame_no + s.offset) % len(frames)])
            sent += 1
        if tick % ping_every == 0:
            for s in sessions:
                if not s.transport.is_closing():
                    s.transport.write(ws_client_frame(b'{"t":"ping","data":"soak"}', 0x1))
        tick += 1
    elapsed = time.monotonic() - start
    await asyncio.sleep(3)  # answers in flight finish
    await asyncio.gather(*(s.ws.close() for s in sessions), return_exceptions=True)
    for r in readers:
        r.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    counts: dict[str, int] = {}
    errors: dict[str, int] = {}
    for s in sessions:
        for k, v in s.counts.items():
            counts[k] = counts.get(k, 0) + v
        for k, v in s.errors.items():
            errors[k] = errors.get(k, 0) + v
    pipe.send({
        "event": "done", "elapsed_s": elapsed, "frames_sent": sent,
        "frames_expected": int(elapsed * 1000 / FRAME_MS) * len(sessions), "counts": counts, "errors": errors,
        "interrupts_sent": sum(len(s.interrupted) for s in sessions),
        "dropped": [s.dropped for s in sessions if s.dropped][:5],
        "dropped_count": sum(1 for s in sessions if s.dropped),
    })  # fmt: skip


def load_main(params: dict, pipe: Any) -> None:
    try:
        asyncio.run(_load(params, pipe))
    except Exception as exc:  # noqa: BLE001 (reported to the parent)
        pipe.send({"event": "failed", "error": f"{type(exc).__name__}: {exc}"})


# ---------------------------------------------------------------- the server side (this process)


def server_tasks(astrbot) -> tuple[int, int]:
    async def count():
        tasks = asyncio.all_tasks()
        return len(tasks), sum(1 for t in tasks if t.get_name().startswith("live-"))

    return astrbot.call(count)


async def soak(astrbot, providers, args) -> dict:
    import psutil

    me = psutil.Process()
    duration_s = args.minutes * 60
    warmup_s = args.warmup if args.warmup is not None else default_warmup(duration_s, args.turn_every)
    pcm, source = microphone_cycle(args.turn_every)
    urls = [astrbot.ws_url(token=astrbot.jwt(f"soak-{i}"), audio_format="wav") for i in range(args.sessions)]
    rss_boot = me.memory_info().rss
    tasks_boot = await asyncio.to_thread(server_tasks, astrbot)
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    params = {"urls": urls, "pcm": pcm, "duration_s": duration_s, "interrupt_share": args.interrupt_share}
    proc = ctx.Process(target=load_main, args=(params, child), name="soak-load", daemon=True)
    proc.start()
    samples: list[dict] = []
    try:
        connected = await recv_from(parent, 300)
        if connected.get("event") != "connected":
            raise RuntimeError(f"load process: {connected}")
        log(f"{connected['sessions']}/{args.sessions} sessions connected in {connected['connect_s']:.1f} s; "
            f"streaming for {args.minutes:g} min, RSS baseline after {warmup_s:.0f} s")  # fmt: skip
        t0 = time.monotonic()
        next_log = t0 + 60
        tracing = False
        while not parent.poll():
            await asyncio.sleep(SAMPLE_EVERY_S)
            if args.tracemalloc and not tracing and time.monotonic() - t0 >= warmup_s:
                import tracemalloc

                tracemalloc.start(8)
                tracing = True
            total, live = await asyncio.to_thread(server_tasks, astrbot)
            plugin_sessions = await asyncio.to_thread(astrbot.call, _open_sessions(astrbot))
            samples.append({"t_s": round(time.monotonic() - t0, 1), "rss_mb": round(me.memory_info().rss / 2**20, 1),
                            "tasks": total, "live_tasks": live, "sessions": plugin_sessions,
                            "cpu_pct": me.cpu_percent(None)})  # fmt: skip
            if time.monotonic() >= next_log:
                next_log += 60
                s = samples[-1]
                log(f"t={s['t_s']:.0f} s: RSS {s['rss_mb']} MB, {s['tasks']} tasks ({s['live_tasks']} live-*), "
                    f"LLM calls {providers.served['chat']}")  # fmt: skip
            if time.monotonic() - t0 > duration_s + 120:
                raise TimeoutError("the load process overran its duration")
        done = await recv_from(parent, 120)
        held = _still_held() if tracing else None
    finally:
        end_process(proc)
    if done.get("event") != "done":
        raise RuntimeError(f"load process: {done}")
    # after the load: every session closes, every task of theirs ends (bounded)
    settle_start = time.monotonic()
    while time.monotonic() - settle_start < 60:
        total, live = await asyncio.to_thread(server_tasks, astrbot)
        open_now = await asyncio.to_thread(astrbot.call, _open_sessions(astrbot))
        if open_now == 0 and live == 0:
            break
        await asyncio.sleep(1)
    settle_s = time.monotonic() - settle_start
    tasks_end = await asyncio.to_thread(server_tasks, astrbot)
    rss_end = me.memory_info().rss
    warm = [s for s in samples if s["t_s"] >= warmup_s]
    rss_warm_mb = warm[0]["rss_mb"] if warm else samples[0]["rss_mb"]
    rss_last_mb = samples[-1]["rss_mb"] if samples else rss_end / 2**20
    growth = (rss_last_mb - rss_warm_mb) / rss_warm_mb if rss_warm_mb else 0.0
    slope = _slope([(s["t_s"] / 60, s["rss_mb"]) for s in warm])
    counts = done["counts"]
    completed = counts.get("end", 0)
    result = {
        "sessions_requested": args.sessions,
        "sessions_connected": connected["sessions"],
        "connect_failures": connected["failed"],
        "connect_failure_samples": connected["failures"],
        "minutes": args.minutes,
        "turn_every_s": args.turn_every,
        "interrupt_share": args.interrupt_share,
        "microphone": f"PCM16 16 kHz, {FRAME_MS} ms binary frames in real time, server VAD; {args.turn_every:g} s "
        f"cycle: noise floor (-60 dBFS) with one question ({source}); random phase per session",
        "streamed_s": round(done["elapsed_s"], 1),
        "frames_sent_ratio": round(done["frames_sent"] / max(1, done["frames_expected"]), 3),
        "errors": done["errors"],
        "error_frames": sum(done["errors"].values()),
        "dropped_connections": done["dropped_count"],
        "dropped_samples": done["dropped"],
        "turns": {
            "questions_heard": counts.get("user_msg", 0),
            "ended": completed,
            "completed": completed - counts.get("end_interrupted", 0),
            "interrupted": counts.get("end_interrupted", 0),
            "interrupts_sent": done["interrupts_sent"],
            "stop_play": counts.get("stop_play", 0),
            "empty_transcripts": counts.get("transcript_empty", 0),
            "responses": counts.get("response", 0),
            "pongs": counts.get("pong", 0),
        },
        "providers_served": dict(providers.served),
        "rss_mb": {"boot": round(rss_boot / 2**20, 1), "after_warmup": rss_warm_mb, "end_of_load": rss_last_mb,
                   "after_settle": round(rss_end / 2**20, 1), "growth_after_warmup_pct": round(100 * growth, 2),
                   "slope_mb_per_min": round(slope, 3) if slope is not None else None},
        "warmup_s": warmup_s,
        "tasks": {"boot": tasks_boot[0], "peak": max((s["tasks"] for s in samples), default=0),
                  "after_settle": tasks_end[0], "live_after_settle": tasks_end[1], "settle_s": round(settle_s, 1)},
        "samples": samples,
    }
    if held is not None:
        result["held_since_warmup"] = held
    result["passed"] = bool(
        result["error_frames"] == 0
        and result["dropped_connections"] == 0
        and result["connect_failures"] == 0
        and result["sessions_connected"] == args.sessions
        and growth < RSS_GROWTH_LIMIT
        and tasks_end[1] == 0
        and completed > 0
    )
    return result


def _still_held(top: int = 20) -> list[dict]:
    """Memory allocated after the warm-up and still held at the end of the load, by where it was allocated."""
    import gc
    import tracemalloc

    gc.collect()  # what is only garbage in a reference cycle is not held
    snapshot = tracemalloc.take_snapshot()
    tracemalloc.stop()
    stats = snapshot.statistics("traceback")[:top]
    return [
        {"kib": round(s.size / 1024, 1), "blocks": s.count,
         "where": [f"{f.filename.split('site-packages/')[-1]}:{f.lineno}" for f in s.traceback][-4:]}
        for s in stats
    ]  # fmt: skip


def default_warmup(duration_s: float, turn_every_s: float) -> float:
    """Until every session has asked twice (its conversation, history and the host's per-conversation
    state exist, the title is generated): a fifth of the run, at least two question cycles, at most half."""
    return min(duration_s / 2, max(10.0, min(120.0, duration_s / 5), 2 * turn_every_s + 30))


def _open_sessions(astrbot):
    async def count():
        return len(astrbot.plugin().server.connections)

    return count


def _slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope (MB per minute) of RSS over the samples after warm-up."""
    if len(points) < 3:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / var if var else None


# ---------------------------------------------------------------- report


def markdown(r: dict) -> str:
    t, rss, tasks = r["turns"], r["rss_mb"], r["tasks"]
    lines = [
        f"# Soak: {r['sessions_requested']} sessions, {r['minutes']:g} min ({'PASS' if r['passed'] else 'FAIL'})",
        "",
        (f"Generated {r['generated']}; {r['machine']}. {r['microphone']}. A question every {r['turn_every_s']:g} s per "
        f"session; {100 * r['interrupt_share']:.0f} % of answers interrupted at their first audio."),
        "",
        "| figure | value |",
        "|---|---|",
        f"| sessions connected | {r['sessions_connected']} / {r['sessions_requested']} (failed connects: {r['connect_failures']}) |",
        f"| streamed | {r['streamed_s']} s, frames sent {100 * r['frames_sent_ratio']:.1f} % of real time |",
        f"| error frames | {r['error_frames']} {r['errors'] or ''} |",
        f"| dropped connections | {r['dropped_connections']} |",
        (f"| questions heard / turns ended (completed + interrupted) | {t['questions_heard']} / {t['ended']} "
        f"({t['completed']} + {t['interrupted']}) |"),
        f"| interrupts sent / stop_play | {t['interrupts_sent']} / {t['stop_play']} |",
        f"| empty transcripts | {t['empty_transcripts']} |",
        f"| audio frames / pongs | {t['responses']} / {t['pongs']} |",
        (f"| provider requests (LLM, STT, TTS) | {r['providers_served']['chat']}, {r['providers_served']['stt']}, "
        f"{r['providers_served']['tts']} |"),
        (f"| RSS boot / after {r['warmup_s']:.0f} s warm-up / end of load / after settle | {rss['boot']} / "
        f"{rss['after_warmup']} / {rss['end_of_load']} / {rss['after_settle']} MB |"),
        (f"| RSS growth after warm-up | {rss['growth_after_warmup_pct']} % (limit 5 %); slope "
        f"{rss['slope_mb_per_min']} MB/min |"),
        (f"| tasks on AstrBot's loop: boot / peak / after settle | {tasks['boot']} / {tasks['peak']} / "
        f"{tasks['after_settle']} ({tasks['live_after_settle']} live-* left, settled in {tasks['settle_s']} s) |"),
    ]
    return "\n".join(lines) + "\n"


def machine() -> str:
    import platform

    import psutil

    return f"{psutil.cpu_count()} logical cores, {psutil.virtual_memory().total / 2**30:.1f} GB RAM, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="live-soak-"))
    os.environ["ASTRBOT_ROOT"] = str(root)  # read by AstrBot at import time
    os.environ["ASTRBOT_DISABLE_METRICS"] = "1"
    os.environ["ASTRBOT_TEST_MODE"] = "true"
    from tests.harness.astrbot_server import BootedAstrBot
    from tests.harness.fake_providers import FakeProviders

    providers = FakeProviders(
        stt_delay=0.15, tts_delay=0.12, default_ttft=0.3, default_interval=0.03,
        default_transcript=QUESTION, default_reply=ANSWER, keep_records=False,
    )  # fmt: skip
    server = BootedAstrBot(root, REPO, providers, PLUGIN_CONFIG)
    log("booting AstrBot with the plugin and the fake providers")
    server.start()
    for name in ("astrbot", "astrbot_plugin_live", "aiohttp.access", "httpx", "httpx2", "hypercorn.access"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        result = asyncio.run(soak(server, providers, args))
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    result.update(generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), machine=machine(),
                  duration_s=round(time.monotonic() - started, 1))  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"soak-{args.sessions}x{args.minutes:g}m"
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    (args.out / f"{stem}.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))
    log(f"done in {time.monotonic() - started:.0f} s: {'PASS' if result['passed'] else 'FAIL'}; "
        f"results in {args.out / stem}.{{json,md}}")  # fmt: skip
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
