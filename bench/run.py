"""Live Mode benchmark: the plugin against the host's built-in live backend, in one run.

    .venv/bin/python bench/run.py            # full run, ~6-7 min; writes bench/results/
    .venv/bin/python bench/run.py --quick    # smoke-sized run, ~85 s; writes bench/results/quick/

Boots a real AstrBot (core + dashboard) with this plugin and the fake OpenAI-compatible
providers in this process (tests/harness), then measures over real WebSockets:
first audio and its decomposition, barge-in, gaps between sentences (plugin and built-in,
same scripted conversations), and capacity with server VAD (plugin only: the built-in has
no server VAD). See bench/BENCHMARKS.md for how to read the results.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLUGIN_CONFIG = {"stt_provider_id": "fake_stt", "tts_provider_id": "fake_tts"}
FULL_BUDGET_S = 480


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="few runs, capacity at 50 and 100 only (~85 s)")
    ap.add_argument("--out", type=Path, help="results folder (default bench/results, or bench/results/quick)")
    ap.add_argument("--only", action="append", choices=("latency", "interrupt", "capacity", "turn_taking", "realtime"),
                    help="run only these parts (repeatable); turn_taking (~10 min, needs Piper) and realtime "
                         "(the realtime backend against the cascade, ~5 min) run only when named")  # fmt: skip
    ap.add_argument("--levels", help="capacity levels, comma-separated (default 50,100,200,300)")
    ap.add_argument("--bisect", type=int, default=3, metavar="STEPS",
                    help="capacity: bisection steps after the first failing level (default 3; --quick: 0)")  # fmt: skip
    ap.add_argument("--frame-ms", default="60,20",
                    help="capacity microphone frame sizes in ms, comma-separated; the first is the headline "
                         "(default 60,20; --quick: the first only)")  # fmt: skip
    ap.add_argument("--end-of-turn", choices=("model", "silence"),
                    help="the plugin's end_of_turn setting for the whole run (default: the plugin's default, model); "
                         "the turn-taking part sets it per policy")  # fmt: skip
    ap.add_argument("--wait-quiet", type=float, default=0, metavar="S",
                    help="on a shared machine: wait up to S seconds for other processes to use < 0.3 cores "
                         "before the run and before the capacity part")  # fmt: skip
    return ap.parse_args(argv)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def quiet_logs() -> None:
    """Per-request INFO logging costs CPU on the server loop; both sides get the same treatment."""
    for name in ("astrbot", "astrbot_plugin_live", "aiohttp.access", "httpx", "httpx2", "hypercorn.access"):
        logging.getLogger(name).setLevel(logging.WARNING)


def wait_quiet(limit_s: float, threshold: float = 0.3) -> float:
    """Cores other processes use now; with `limit_s`, first wait (bounded) for them to calm down."""
    from bench import report

    deadline = time.monotonic() + limit_s
    while True:
        busy = report.background_cpu(1.0)
        if busy < threshold or time.monotonic() >= deadline:
            return busy
        log(f"other processes use {busy} cores; waiting for a quieter machine")
        time.sleep(2)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    # AstrBot reads ASTRBOT_ROOT at import time: set it before anything imports astrbot.
    root = Path(tempfile.mkdtemp(prefix="live-bench-"))
    os.environ["ASTRBOT_ROOT"] = str(root)
    os.environ["ASTRBOT_DISABLE_METRICS"] = "1"
    os.environ["ASTRBOT_TEST_MODE"] = "true"
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))

    from bench import report
    from tests.harness.astrbot_server import BootedAstrBot
    from tests.harness.fake_providers import FakeProviders

    out_dir = args.out or (REPO / "bench" / "results" / ("quick" if args.quick else ""))
    parts = set(args.only or ("latency", "interrupt", "capacity"))
    waiting = time.monotonic()
    background = wait_quiet(args.wait_quiet)
    waited = time.monotonic() - waiting  # not counted in the time budget
    if background > 0.3:
        log(f"warning: other processes are using {background} cores of this machine; figures will be noisier")
    providers = FakeProviders()
    config = PLUGIN_CONFIG | ({"end_of_turn": args.end_of_turn} if args.end_of_turn else {})
    server = BootedAstrBot(root, REPO, providers, config)
    log("booting AstrBot with the plugin and the fake providers")
    server.start()
    quiet_logs()
    log(f"AstrBot up in {time.monotonic() - started:.1f} s on port {server.port}")
    try:
        results, samples = asyncio.run(_bench(server, providers, args, parts, started + waited))
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    machine = report.machine_facts()
    if "turn_taking" in parts:
        from bench import turn_taking

        command = "bench/run.py " + " ".join(sys.argv[1:] if argv is None else argv)
        written = turn_taking.write(results.pop("turn_taking"), out_dir, command=command.strip(), machine=machine)
        print(written.read_text(encoding="utf-8"))
        log(f"turn taking results in {written.with_suffix('.json')} and {written}")
        if parts == {"turn_taking"}:  # the other parts' results files stay as they are
            log(f"done in {time.monotonic() - started:.0f} s")
            return 0
    if "realtime" in parts:
        from bench import realtime

        command = "bench/run.py " + " ".join(sys.argv[1:] if argv is None else argv)
        written = realtime.write(results.pop("realtime"), out_dir, command=command.strip(), machine=machine)
        print(written.read_text(encoding="utf-8"))
        log(f"realtime backend results in {written.with_suffix('.json')} and {written}")
        if not parts - {"turn_taking", "realtime"}:  # the other parts' results files stay as they are
            log(f"done in {time.monotonic() - started:.0f} s")
            return 0
    results.update(
        mode="quick" if args.quick else "full",
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        duration_s=time.monotonic() - started,
        machine=machine,
        background_cpu_cores=background,
    )
    report.write(results, samples, out_dir)
    print(report.markdown(results))
    log(f"done in {time.monotonic() - started:.0f} s; results in {out_dir}")
    return 0


async def _bench(server, providers, args, parts: set[str], started: float) -> tuple[dict, dict]:
    from bench import capacity, measure, report

    quick = args.quick
    lat = measure.ProviderLatency()
    results: dict = {
        "providers": {
            "stt_ms": lat.stt_s * 1000,
            "ttft_ms": lat.ttft_s * 1000,
            "token_ms": lat.token_s * 1000,
            "tts_ms": lat.tts_s * 1000,
        },
        "latency": {},
        "interrupt": {},
        "capacity": None,
        "notes": [],
    }
    samples: dict = {"turns": [], "interrupts": []}
    if "latency" in parts:
        rounds = 1 if quick else 5
        log(f"first audio: {rounds} x {len(measure.CONVERSATIONS)} voice turns per side")
        turns = await measure.run_turns(server, providers, rounds=rounds, lat=lat, progress=log)
        samples["turns"] = [t.as_dict() for t in turns]
        results["latency"] = measure.summarize_turns(turns)
        report.above_floor(results["latency"], samples["turns"])
    if "interrupt" in parts:
        rounds = 1 if quick else 2
        log(f"interrupt: {rounds} x {len(measure.CONVERSATIONS)} long answers per side, cut at the first audio")
        ints = await measure.run_turns(server, providers, rounds=rounds, lat=lat, interrupt=True,
                                       reply=measure.LONG_REPLY, warmup=False, progress=log)  # fmt: skip
        samples["interrupts"] = [t.as_dict() for t in ints]
        results["interrupt"] = measure.summarize_interrupts(ints)
    if "capacity" in parts:
        levels = (
            [int(x) for x in args.levels.split(",")] if args.levels else ([50, 100] if quick else [50, 100, 200, 300])
        )
        if args.wait_quiet:
            waiting = time.monotonic()
            results["capacity_background_cpu_cores"] = await asyncio.to_thread(wait_quiet, args.wait_quiet)
            started += time.monotonic() - waiting  # not counted in the time budget
        frame_sizes = [int(x) for x in args.frame_ms.split(",")][: 1 if quick else None]
        spent = time.monotonic() - started
        budget = max(30.0, (75 if quick else FULL_BUDGET_S - 30) - spent)
        by_frame: dict[str, dict] = {}
        for i, frame_ms in enumerate(frame_sizes):
            share = budget / len(frame_sizes) if i == 0 else max(30.0, budget - (time.monotonic() - started - spent))
            log(f"capacity: {frame_ms} ms frames, levels {levels}, {share:.0f} s budget")
            by_frame[str(frame_ms)] = await capacity.run_capacity(
                server, levels, warmup_s=3 if quick else 4, measure_s=6 if quick else 10,
                bisect_steps=0 if quick else args.bisect, budget_s=share, frame_ms=frame_ms, fresh_server=i == 0,
                progress=log,
            )  # fmt: skip
        results["capacity"] = by_frame[str(frame_sizes[0])]  # the headline frame size
        results["capacity_by_frame_ms"] = by_frame
    if "turn_taking" in parts:
        from bench import turn_taking

        plan = turn_taking.QUICK if quick else turn_taking.FULL
        say, close = turn_taking.piper_say()
        try:
            log("turn taking: synthesizing the voices (Piper)")
            voices = await asyncio.to_thread(turn_taking.make_voices, say, plan)
        finally:
            close()
        log(f"turn taking: {plan}")
        results["turn_taking"] = await turn_taking.run_suite(server, providers, voices, plan=plan, progress=log)
    if "realtime" in parts:
        from bench import realtime

        plan = realtime.QUICK if quick else realtime.FULL
        log(f"realtime backend against the cascade: {plan}")
        results["realtime"] = await realtime.run_suite(server, providers, plan=plan, progress=log)
    results["targets"] = report.targets_table(results["latency"], results["interrupt"], results["capacity"])
    return results, samples


if __name__ == "__main__":
    sys.exit(main())
