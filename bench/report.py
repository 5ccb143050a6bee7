"""Results: machine facts, the targets table, results.json, results.md and the plots."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import psutil

from .stats import summary

TARGETS = {
    "first_audio_ratio": 0.6,
    "overhead_median_ms": 15.0,
    "overhead_p95_ms": 40.0,
    "stop_play_p95_ms": 30.0,
    "llm_closed_p95_ms": 100.0,
    "gap_p95_ms": 50.0,
    "vad_lag_p99_ms": 50.0,
}


def machine_facts() -> dict:
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        from importlib.metadata import version

        astrbot_version = version("astrbot")
    except Exception:  # noqa: BLE001 (metadata is optional)
        astrbot_version = "unknown"
    return {
        "cpu_model": model,
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "astrbot": astrbot_version,
    }


def background_cpu(seconds: float = 1.0) -> float:
    """Cores busy with other processes right now (other engineers' test runs share this machine)."""
    me = psutil.Process()
    c0, m0 = psutil.cpu_times(), me.cpu_times()
    time.sleep(seconds)
    c1, m1 = psutil.cpu_times(), me.cpu_times()
    busy = (c1.user + c1.system - c0.user - c0.system) / seconds
    mine = (m1.user + m1.system - m0.user - m0.system) / seconds
    return round(max(0.0, busy - mine), 2)


# ---------------------------------------------------------------- targets


def targets_table(latency: dict, interrupts: dict, capacity: dict | None) -> list[dict]:
    rows: list[dict] = []

    def add(name: str, value: Any, target: str, met: bool | None, note: str = "") -> None:
        rows.append({"figure": name, "value": value, "target": target, "met": met, "note": note})

    plug = latency.get("plugin", {})
    r = latency.get("ratio_first_audio_median")
    add("first audio, plugin / built-in (ratio of medians)", r, f"<= {TARGETS['first_audio_ratio']}",
        None if r is None else r <= TARGETS["first_audio_ratio"])  # fmt: skip
    if latency.get("ratio_above_floor") is not None:
        add("  same, above the shared provider floor (STT + TTFT + TTS)", latency["ratio_above_floor"], "(info)", None)
    ov = plug.get("overhead_ms", {})
    add("plugin overhead, median (ms)", ov.get("median"), f"<= {TARGETS['overhead_median_ms']:.0f}",
        None if ov.get("median") is None else ov["median"] <= TARGETS["overhead_median_ms"])  # fmt: skip
    add("plugin overhead, p95 (ms)", ov.get("p95"), f"<= {TARGETS['overhead_p95_ms']:.0f}",
        None if ov.get("p95") is None else ov["p95"] <= TARGETS["overhead_p95_ms"])  # fmt: skip
    own = plug.get("overhead_breakdown_ms", {}).get("live_stack_ms", {})
    if own.get("n"):
        add("  of which the live stack's own (without AstrBot's pipeline + LLM SDK), median / p95 (ms)",
            f"{own['median']} / {own['p95']}", "(info)", None)  # fmt: skip
    ip = interrupts.get("plugin", {})
    sp = ip.get("stop_play_ms", {})
    add("interrupt -> stop_play, p95 (ms)", sp.get("p95"), f"<= {TARGETS['stop_play_p95_ms']:.0f}",
        None if sp.get("p95") is None else sp["p95"] <= TARGETS["stop_play_p95_ms"]
        and ip.get("stop_play_received") == ip.get("runs"))  # fmt: skip
    lc = ip.get("llm_closed_ms", {})
    add("interrupt -> LLM stream closed, p95 (ms)", lc.get("p95"), f"<= {TARGETS['llm_closed_p95_ms']:.0f}",
        None if lc.get("p95") is None else lc["p95"] <= TARGETS["llm_closed_p95_ms"]
        and ip.get("llm_closed_early") == ip.get("runs"))  # fmt: skip
    g = plug.get("gap_ms", {})
    add("gap between sentences, plugin p95 (ms)", g.get("p95"), f"<= {TARGETS['gap_p95_ms']:.0f}",
        None if g.get("p95") is None else g["p95"] <= TARGETS["gap_p95_ms"])  # fmt: skip
    if capacity:
        best = capacity.get("max_sessions_passing")
        add(f"capacity: most sessions with VAD lag p99 < 50 ms ({capacity.get('frame_ms', 20)} ms frames)", best,
            "largest N of 50/100/200/300", None,
            f"first failing: {capacity.get('first_failing')}")  # fmt: skip
    return rows


# ---------------------------------------------------------------- markdown


def _f(v: Any, unit: str = "") -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        v = f"{v:.0f}" if abs(v) >= 100 else f"{v:.1f}"
    return f"{v}{unit}"


def _r(v: Any) -> str:
    return "–" if v is None else f"{v:.2f}"


def _s(s: dict | None) -> str:
    """median / p95 (n)"""
    if not s or not s.get("n"):
        return "–"
    return f"{_f(s['median'])} / {_f(s['p95'])} (n={s['n']})"


def markdown(results: dict) -> str:
    m = results["machine"]
    lat, intr, cap = results["latency"], results["interrupt"], results.get("capacity")
    prov = results["providers"]
    p, b = lat.get("plugin", {}), lat.get("builtin", {})
    out = [
        f"# Live Mode benchmark results ({results['mode']})",
        "",
        (
            f"Generated {results['generated']} in {results['duration_s']:.0f} s by `python bench/run.py"
            f"{' --quick' if results['mode'] == 'quick' else ''}`."
        ),
        (
            f"Machine: {m['cpu_model']}, {m['logical_cores']} logical cores, {m['memory_gb']} GB RAM, "
            f"Python {m['python']}, AstrBot {m['astrbot']}. Other processes were using "
            f"{results['background_cpu_cores']} cores when the run started."
        ),
        (
            f"Fake providers (real HTTP on loopback): STT {prov['stt_ms']:.0f} ms, LLM TTFT {prov['ttft_ms']:.0f} ms "
            f"then {prov['token_ms']:.0f} ms/token, TTS {prov['tts_ms']:.0f} ms per sentence (audio ~45 ms per character, "
            "so TTS is faster than real time)."
        ),
        "",
        "## Targets",
        "",
        "| figure | value | target | met |",
        "|---|---|---|---|",
    ]
    for row in results["targets"]:
        met = {True: "yes", False: "**no**", None: "–"}[row["met"]]
        note = f" ({row['note']})" if row["note"] else ""
        value = _r(row["value"]) if "ratio" in row["figure"] or "provider floor" in row["figure"] else _f(row["value"])
        out.append(f"| {row['figure']} | {value}{note} | {row['target']} | {met} |")
    out += [
        "",
        "## First audio: end of user speech -> first audio frame at the client",
        "",
        "Time zero is the client's `end_speaking` send; ms, median / p95 (n).",
        "",
        "| conversation | plugin `/api/v1/live/ws` | built-in `/api/v1/live-chat/ws` | ratio of medians |",
        "|---|---|---|---|",
    ]
    for conv, s in p.get("first_audio_by_conversation", {}).items():
        out.append(f"| {conv} | {_s(s)} | {_s(b.get('first_audio_by_conversation', {}).get(conv))} | "
                   f"{_r(lat.get('ratio_by_conversation', {}).get(conv))} |")  # fmt: skip
    out.append(f"| **all** | {_s(p.get('first_audio_ms'))} | {_s(b.get('first_audio_ms'))} | "
               f"**{_r(lat.get('ratio_first_audio_median'))}** (p95: {_r(lat.get('ratio_first_audio_p95'))}) |")  # fmt: skip
    floor = lat.get("provider_floor_ms")
    if floor:
        out += ["", (f"Provider floor (STT + TTFT + TTS of one sentence) is ~{floor:.0f} ms for both. "
                f"Above that floor: plugin {_f(lat.get('above_floor_ms', {}).get('plugin'))} ms, built-in "
                f"{_f(lat.get('above_floor_ms', {}).get('builtin'))} ms (medians), ratio "
                f"**{_r(lat.get('ratio_above_floor'))}**.")]  # fmt: skip
    out += [
        "",
        "## Where the time goes before the first audio (ms, median / p95)",
        "",
        (
            "Provider time comes from the fake server's own records (request in -> response out; for the LLM, "
            "request in -> the token after which the first sentence went to TTS). Overhead = first audio - "
            "(STT + LLM to first clause + TTS of that clause): everything the live stack and the host add."
        ),
        "",
        "| part | plugin | built-in |",
        "|---|---|---|",
    ]
    rows = [
        ("STT request (provider)", "provider_ms", "stt_ms"),
        ("LLM request -> first clause complete (provider)", "provider_ms", "llm_to_first_clause_ms"),
        ("  of which: segmenter look-ahead after the clause's last token", "provider_ms", "lookahead_ms"),
        ("TTS of the first clause (provider)", "provider_ms", "tts_first_clause_ms"),
        ("end_speaking -> STT request (ingest)", "overhead_breakdown_ms", "ingest_ms"),
        ("STT response -> LLM request at the provider, all of it", "overhead_breakdown_ms", "stt_to_llm_ms"),
        (
            "  transcript -> event enters AstrBot's pipeline (live stack)",
            "overhead_breakdown_ms",
            "transcript_to_pipeline_ms",
        ),
        ("  AstrBot pipeline stages -> LLM SDK call (host)", "overhead_breakdown_ms", "host_pipeline_ms"),
        ("  LLM SDK call -> request at the provider (openai SDK, httpx)", "overhead_breakdown_ms", "llm_sdk_send_ms"),
        ("clause token -> TTS request (segmenter, dispatch)", "overhead_breakdown_ms", "clause_to_tts_ms"),
        ("TTS response -> audio at the client (decode, encode, send)", "overhead_breakdown_ms", "tts_to_client_ms"),
    ]
    for label, group, key in rows:
        out.append(f"| {label} | {_s(p.get(group, {}).get(key))} | {_s(b.get(group, {}).get(key))} |")
    out.append(f"| **overhead total** | **{_s(p.get('overhead_ms'))}** | {_s(b.get('overhead_ms'))} |")
    own = p.get("overhead_breakdown_ms", {}).get("live_stack_ms")
    if own and own.get("n"):
        out.append(f"| overhead without AstrBot's pipeline stages and the LLM SDK (the live stack's own) | "
                   f"{_s(own)} | {_s(b.get('overhead_breakdown_ms', {}).get('live_stack_ms'))} |")  # fmt: skip
    ip, ib = intr.get("plugin", {}), intr.get("builtin", {})
    out += [
        "",
        "## Interrupt (barge-in) at the first audio of a long answer",
        "",
        "| | plugin | built-in |",
        "|---|---|---|",
        f"| runs | {ip.get('runs', '–')} | {ib.get('runs', '–')} |",
        (
            f"| interrupt -> `stop_play` (ms) | {_s(ip.get('stop_play_ms'))} | "
            f"{_s(ib.get('stop_play_ms')) if ib.get('stop_play_received') else 'never sent'} |"
        ),
        (
            f"| `stop_play` received | {ip.get('stop_play_received', '–')}/{ip.get('runs', '–')} | "
            f"{ib.get('stop_play_received', '–')}/{ib.get('runs', '–')} |"
        ),
        (
            f"| interrupt -> LLM stream closed (ms) | {_s(ip.get('llm_closed_ms'))} | "
            f"{_s(ib.get('llm_closed_ms')) if ib.get('llm_closed_early') else 'never closed'} |"
        ),
        (
            f"| LLM stream closed early | {ip.get('llm_closed_early', '–')}/{ip.get('runs', '–')} | "
            f"{ib.get('llm_closed_early', '–')}/{ib.get('runs', '–')} |"
        ),
        (
            f"| agent stop requested (AstrBot `request_agent_stop_all`) | {ip.get('agent_stop_requested', '–')}/"
            f"{ip.get('runs', '–')} (reaching no active event: {ip.get('agent_stop_reached_no_event', '–')}) | "
            f"{ib.get('agent_stop_requested', '–')}/{ib.get('runs', '–')} |"
        ),
        f"| interrupt -> LLM stream ended (ms) | {_s(ip.get('llm_finished_ms'))} | {_s(ib.get('llm_finished_ms'))} |",
        (
            f"| share of the answer's tokens streamed before the LLM stream ended | {_s(ip.get('tokens_sent_of_total'))} | "
            f"{_s(ib.get('tokens_sent_of_total'))} |"
        ),
        (
            f"| audio frames received after the interrupt | {_s(ip.get('audio_after_interrupt'))} | "
            f"{_s(ib.get('audio_after_interrupt'))} |"
        ),
        f"| interrupt -> last audio frame (ms) | {_s(ip.get('last_audio_ms'))} | {_s(ib.get('last_audio_ms'))} |",
        f"| interrupt -> `end` (ms) | {_s(ip.get('end_ms'))} | {_s(ib.get('end_ms'))} |",
        f"| frames of the turn after `stop_play` (besides `end`) | {ip.get('frames_after_stop_play', '–')} | – |",
        "",
        (
            "The built-in reads `interrupt` only after the turn is over (its receive loop awaits the whole turn), "
            "so its audio keeps coming and its LLM stream runs to the end; a negative 'last audio' for the plugin "
            "means the last frame was the one that triggered the interrupt."
        ),
        "",
        "## Gaps between sentences (TTS faster than real time)",
        "",
        (
            "Silence a client playing in real time hears between sentence n and n+1: arrival of n+1 minus the end "
            "of n's playback (n starts when it arrives or when n-1 ends). ms, median / p95 (n boundaries)."
        ),
        "",
        (
            f"| | plugin | built-in |\n|---|---|---|\n| gap | {_s(p.get('gap_ms'))} | {_s(b.get('gap_ms'))} |\n"
            f"| boundaries with a gap > 10 ms | {p.get('gaps_over_10ms', '–')} | {b.get('gaps_over_10ms', '–')} |"
        ),
    ]
    capacities = (results.get("capacity_by_frame_ms") or {"": cap}) if cap else {}
    for part in capacities.values():
        out += [
            "",
            (
                "## Capacity: concurrent sessions streaming a live microphone (server VAD on), "
                f"{part.get('frame_ms', 20)} ms frames"
            ),
            "",
            (
                f"{part['microphone']}. Load from a separate process ({part['client']}). Warm-up "
                f"{part['warmup_s']} s, then measured for {part['measure_s']} s. Pass = VAD lag p99 < 50 ms "
                "(plugin status: frame queued -> VAD done) and receive backlog p99 < 50 ms (ping round trip on the "
                "streaming sockets, queued behind their audio), every session connected, the client kept pace."
            ),
            "",
            (
                "| sessions | VAD lag ms p50 / p99 (status p99) | receive backlog ms p50 / p99 | server CPU (cores) | "
                "CPU per session (% of a core) | server RSS | client CPU (cores) | other processes (cores) | "
                "load avg 1 min | pass |"
            ),
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for lv in part["levels"]:
            v, rb = lv.get("vad_lag_ms", {}), lv.get("receive_backlog_ms", {})
            out.append(
                f"| {lv['sessions_requested']} ({lv.get('sessions_connected', 0)} connected) | {_f(v.get('median'))} / "
                f"{_f(v.get('p99'))} ({_f(lv.get('vad_lag_p99_ms_status'))}) | {_f(rb.get('median'))} / {_f(rb.get('p99'))} | "
                f"{_r(lv.get('server_cpu_cores'))} | {_r(lv.get('server_cpu_pct_per_session'))} | "
                f"{_f(lv.get('rss_mb'))} MB | {_r(lv.get('client_cpu_cores'))} | "
                f"{_r(lv.get('other_cpu_cores'))} | {_r(lv.get('load_avg_1m'))} | {'yes' if lv.get('passed') else '**no**'} |"
            )
        memory = (
            f"{_f(part['rss_per_session_mb'])} MB of RSS per session (growth over the server before the first "
            "level, per connected session)"
            if part.get("rss_per_session_mb") is not None
            else "not measured in this part (an earlier part already grew the server's heap)"
        )
        out += ["", f"Largest passing N: **{part.get('max_sessions_passing')}**. Memory: {memory}."]
    if results.get("notes"):
        out += ["", "## Notes", ""] + [f"- {n}" for n in results["notes"]]
    out += ["", "Plots: " + ", ".join(f"`{p}`" for p in results.get("plots", [])), ""]
    return "\n".join(out)


# ---------------------------------------------------------------- plots


def plots(results: dict, samples: dict, out_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made: list[str] = []
    colors = {"plugin": "#2b7bba", "builtin": "#d95f02"}
    turns = samples.get("turns", [])

    # 1. first audio per conversation
    convs = list(dict.fromkeys(t["conversation"] for t in turns))
    if convs:
        fig, ax = plt.subplots(figsize=(8, 4.2))
        for j, side in enumerate(("plugin", "builtin")):
            data = [[t["first_audio_ms"] for t in turns if t["side"] == side and t["conversation"] == c and t["ok"]]
                    for c in convs]  # fmt: skip
            pos = [i * 3 + j for i in range(len(convs))]
            bp = ax.boxplot([d or [float("nan")] for d in data], positions=pos, widths=0.8, patch_artist=True)
            for patch in bp["boxes"]:
                patch.set_facecolor(colors[side])
                patch.set_alpha(0.6)
            ax.plot([], [], color=colors[side], lw=8, alpha=0.6, label=side)
        ax.set_xticks([i * 3 + 0.5 for i in range(len(convs))], convs)
        ax.set_ylabel("end of speech -> first audio (ms)")
        ax.set_title("First audio, same fake providers")
        ax.legend()
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        fig.savefig(out_dir / "first_audio.png", dpi=110)
        plt.close(fig)
        made.append("first_audio.png")

    # 2. where the time goes (medians, stacked)
    lat = results["latency"]
    parts = [
        ("ingest", "overhead_breakdown_ms", "ingest_ms", "#bbbbbb"),
        ("STT", "provider_ms", "stt_ms", "#66c2a5"),
        ("host pipeline", "overhead_breakdown_ms", "stt_to_llm_ms", "#999999"),
        ("LLM to first clause", "provider_ms", "llm_to_first_clause_ms", "#8da0cb"),
        ("segmenter/dispatch", "overhead_breakdown_ms", "clause_to_tts_ms", "#777777"),
        ("TTS first clause", "provider_ms", "tts_first_clause_ms", "#e78ac3"),
        ("deliver", "overhead_breakdown_ms", "tts_to_client_ms", "#555555"),
    ]
    sides = [s for s in ("plugin", "builtin") if s in lat]
    if sides:
        fig, ax = plt.subplots(figsize=(8, 2.8))
        for i, side in enumerate(sides):
            left = 0.0
            for label, group, key, color in parts:
                v = (lat[side].get(group, {}).get(key) or {}).get("median") or 0.0
                ax.barh(i, v, left=left, color=color, edgecolor="white", label=label if i == 0 else None)
                left += v
        ax.set_yticks(range(len(sides)), sides)
        ax.set_xlabel("ms after end of speech (medians)")
        ax.set_title("First audio, decomposed")
        ax.legend(ncol=4, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.35))
        fig.tight_layout()
        fig.savefig(out_dir / "first_audio_breakdown.png", dpi=110)
        plt.close(fig)
        made.append("first_audio_breakdown.png")

    # 3. interrupt
    ints = samples.get("interrupts", [])
    if ints:
        fig, ax = plt.subplots(figsize=(8, 3.6))
        rows = [
            ("plugin", "stop_play_ms", "plugin: stop_play"),
            ("plugin", "llm_closed_ms", "plugin: LLM closed"),
            ("plugin", "last_audio_ms", "plugin: last audio"),
            ("builtin", "stop_play_ms", "built-in: stop_play"),
            ("builtin", "llm_finished_ms", "built-in: LLM ended"),
            ("builtin", "last_audio_ms", "built-in: last audio"),
        ]
        for i, (side, key, label) in enumerate(rows):
            vals = [t["interrupt"][key] for t in ints if t["side"] == side and t["interrupt"].get(key) is not None]
            vals = [max(v, 0.1) for v in vals]
            if vals:
                ax.scatter(vals, [i] * len(vals), color=colors[side], alpha=0.7)
            else:
                ax.text(0.12, i, "never", va="center", fontsize=8, color=colors[side])
        ax.set_yticks(range(len(rows)), [r[2] for r in rows])
        ax.set_xscale("log")
        ax.set_xlim(0.1, 10000)
        ax.axvline(30, ls="--", color="gray", lw=0.8)
        ax.axvline(100, ls=":", color="gray", lw=0.8)
        ax.set_xlabel("ms after the client's interrupt (log)")
        ax.set_title("Barge-in: what happens after `interrupt`")
        ax.grid(axis="x", alpha=0.3)
        fig.tight_layout()
        fig.savefig(out_dir / "interrupt.png", dpi=110)
        plt.close(fig)
        made.append("interrupt.png")

    # 4. gaps
    if turns:
        fig, ax = plt.subplots(figsize=(6, 3.4))
        for side in ("plugin", "builtin"):
            gaps = sorted(g for t in turns if t["side"] == side for g in t["gaps_ms"])
            if gaps:
                ys = [(i + 1) / len(gaps) for i in range(len(gaps))]
                ax.step(gaps, ys, where="post", color=colors[side], label=f"{side} (n={len(gaps)})")
        ax.axvline(50, ls="--", color="gray", lw=0.8)
        ax.set_xlabel("silence between sentences (ms)")
        ax.set_ylabel("share of boundaries")
        ax.set_title("Gaps a real-time player hears")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out_dir / "gaps.png", dpi=110)
        plt.close(fig)
        made.append("gaps.png")

    # 5. capacity
    by_frame = results.get("capacity_by_frame_ms") or (
        {str(results["capacity"].get("frame_ms", 20)): results["capacity"]} if results.get("capacity") else {}
    )
    by_frame = {k: c for k, c in by_frame.items() if c.get("levels")}
    if by_frame:
        fig, ax = plt.subplots(figsize=(7, 3.8))
        ax2 = ax.twinx()
        top = 50.0
        for (frame_ms, cap), color in zip(by_frame.items(), ("tab:blue", "tab:orange", "tab:green")):
            lv = cap["levels"]
            ns = [x["sessions_requested"] for x in lv]
            ax.plot(ns, [x["vad_lag_ms"]["p99"] for x in lv], "o-", color=color, label=f"{frame_ms} ms: VAD lag p99")
            ax.plot(ns, [x["receive_backlog_ms"]["p99"] for x in lv], "s--", color=color,
                    label=f"{frame_ms} ms: receive backlog p99")  # fmt: skip
            ax2.plot(ns, [x["server_cpu_cores"] for x in lv], ":", color=color, alpha=0.6)
            top = max([top] + [x["vad_lag_ms"]["p99"] or 0 for x in lv] + [x["receive_backlog_ms"]["p99"] or 0 for x in lv])
        ax.axhline(50, ls="--", color="red", lw=0.8)
        ax.set_yscale("log")
        ax.set_ylim(top=top * 1.6)
        ax.set_xlabel("concurrent streaming sessions")
        ax.set_ylabel("ms")
        ax2.set_ylabel("server CPU (cores, dotted)")
        ax.set_title("Capacity with server VAD")
        ax.legend(loc="upper left", fontsize=7)
        fig.tight_layout()
        fig.savefig(out_dir / "capacity.png", dpi=110)
        plt.close(fig)
        made.append("capacity.png")
    return made


def write(results: dict, samples: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    results["plots"] = plots(results, samples, out_dir)
    (out_dir / "results.json").write_text(json.dumps({**results, "samples": samples}, indent=1, ensure_ascii=False))
    (out_dir / "results.md").write_text(markdown(results), encoding="utf-8")


def above_floor(latency: dict, samples: list[dict]) -> None:
    """Add the part of first audio above the shared provider floor (STT + TTFT + TTS)."""
    per_side = {}
    floors = []
    for side in ("plugin", "builtin"):
        xs = []
        for t in samples:
            pr = t.get("provider") or {}
            if t["side"] != side or not t["ok"] or "stt_ms" not in pr:
                continue
            floor = pr["stt_ms"] + pr["llm_ttft_ms"] + pr["tts_first_clause_ms"]
            floors.append(floor)
            xs.append(t["first_audio_ms"] - floor)
        per_side[side] = summary(xs)["median"]
    if floors and all(v is not None for v in per_side.values()):
        latency["provider_floor_ms"] = summary(floors)["median"]
        latency["above_floor_ms"] = per_side
        latency["ratio_above_floor"] = (
            round(per_side["plugin"] / per_side["builtin"], 2) if per_side["builtin"] else None
        )
