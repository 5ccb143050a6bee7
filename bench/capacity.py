"""Capacity: how many sessions streaming a live microphone (server VAD on) one AstrBot holds.

The load comes from a separate process (`bench.loadgen`); the server is this process, so
psutil on this process is the server's CPU and memory. A level passes when, over the
measurement window, the plugin's VAD lag p99 (`GET /api/plug/live/status`, queue -> VAD done)
is under 50 ms AND the receive backlog p99 (ping round trip on the streaming sockets, behind
their audio) is under 50 ms: the first alone would not see frames waiting before they are read.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import shutil
import subprocess
import time
from typing import Any

import numpy as np
import psutil

from . import loadgen
from .stats import summary

LAG_LIMIT_MS = 50.0
CYCLE_S = 15.0  # each session speaks one short sentence every 15 s, silence (noise floor) otherwise
SPOKEN = "What is the weather like today?"


def microphone_stream(seed: int = 3) -> tuple[bytes, str]:
    """A 15 s cycle of 16 kHz PCM16: a -60 dBFS noise floor with one spoken sentence in it.

    The sentence is espeak-ng (real speech, so the Silero VAD fires and utterances end-point);
    without espeak-ng, speech-shaped noise (the VAD then mostly hears silence: same CPU per frame).
    """
    rng = np.random.default_rng(seed)
    total = int(CYCLE_S * 16000)
    mic = rng.normal(0, 30, total)
    source = "noise only"
    speech = None
    if shutil.which("espeak-ng"):
        try:
            from live.audio.resample import resample_pcm16
            from live.audio.wav import wav_to_pcm16

            wav = subprocess.run(["espeak-ng", "--stdout", SPOKEN], capture_output=True, check=True, timeout=20).stdout
            pcm, rate = wav_to_pcm16(wav)
            speech = np.frombuffer(resample_pcm16(pcm, rate, 16000), "<i2").astype(np.float64)
            source = f"espeak-ng: {SPOKEN!r}"
        except (OSError, ValueError, subprocess.SubprocessError):  # fall back below
            speech = None
    if speech is None:
        from tests.harness.audio import speech_like_pcm

        speech = np.frombuffer(speech_like_pcm(1.8), "<i2").astype(np.float64)
        source = "speech-shaped noise (no espeak-ng)"
    at = int(0.5 * 16000)
    mic[at : at + speech.size] += speech
    return np.clip(mic, -32768, 32767).astype("<i2").tobytes(), source


def _load_avg() -> float | None:
    """The machine's 1-minute load average (other engineers share these 2 cores)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


async def _plugin_call(astrbot: Any, fn) -> Any:
    async def run():
        return fn(astrbot.plugin())

    return await asyncio.to_thread(astrbot.call, run)


def _lags(plugin) -> list[float]:
    return [lag for c in plugin.server.connections.values() for lag in c.session.vad_lags_ms]


def _clear_lags(plugin) -> int:
    for c in plugin.server.connections.values():
        c.session.vad_lags_ms.clear()
    return len(plugin.server.connections)


STATUS_PATHS = ("/api/plug/astrbot_plugin_live/live/status", "/api/plug/live/status")


async def plugin_status(astrbot: Any) -> dict:
    """The plugin's status route (dashboard JWT); {} when it cannot be read."""
    import aiohttp

    headers = {"Authorization": f"Bearer {astrbot.jwt()}"}
    async with aiohttp.ClientSession() as http:
        for path in STATUS_PATHS:
            async with http.get(f"{astrbot.base_url}{path}", headers=headers) as r:
                body = await r.json(content_type=None)
            if not isinstance(body, dict):
                continue
            data = body.get("data") if "sessions" not in body else body  # bare, or wrapped in {"data": ...}
            if isinstance(data, dict) and "sessions" in data:
                return data
    return {}


async def recv_from(conn, timeout: float) -> dict:
    """The next message from a load process, without blocking the loop."""

    def wait():
        if not conn.poll(timeout):
            raise TimeoutError("the load process did not answer in time")
        return conn.recv()

    return await asyncio.to_thread(wait)


def end_process(proc) -> None:
    """Wait for a load process to exit; terminate it if it will not."""
    proc.join(30)
    if proc.is_alive():
        proc.terminate()
        proc.join(5)


def _sessions(plugin) -> int:
    return len(plugin.server.connections)


async def _wait_sessions(astrbot: Any, count: int, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    n = -1
    while time.monotonic() < deadline:
        n = await _plugin_call(astrbot, _sessions)
        if n == count:
            return n
        await asyncio.sleep(0.25)
    return n


def end_of_turn_summary(status: dict, model_before: dict, window_s: float) -> dict:
    """How turns ended under load: the rule in use at the end of the window and, with the model,
    how many checks it ran per second in the window (each session speaks once per `CYCLE_S`)."""
    model = status.get("end_of_turn_model") or {}
    out: dict[str, Any] = {"mode": status.get("end_of_turn"), "reason": status.get("end_of_turn_reason")}
    if model:
        out.update({
            "checks_per_s": round((model.get("asked", 0) - model_before.get("asked", 0)) / window_s, 2),
            "cpu_share": model.get("cpu_share"), "starved": model.get("starved"), "item_ms": model.get("item_ms"),
            "niceness": model.get("niceness"),
        })  # fmt: skip
    return out


async def run_level(
    astrbot: Any,
    n: int,
    *,
    pcm: bytes,
    warmup_s: float,
    measure_s: float,
    baseline_rss: int,
    frame_ms: int = loadgen.FRAME_MS,
    progress=lambda _m: None,
) -> dict:
    """Stream `n` sessions in `frame_ms` frames; measure over `measure_s` after `warmup_s`."""
    me = psutil.Process()
    urls = [astrbot.ws_url("/api/v1/live/ws", token=astrbot.jwt(f"cap{n}-{i}"), audio_format="wav") for i in range(n)]
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    params = {"urls": urls, "pcm": pcm, "duration_s": warmup_s + measure_s + 60, "connect_concurrency": 16,
              "frame_ms": frame_ms}  # fmt: skip
    proc = ctx.Process(target=loadgen.main, args=(params, child), name=f"loadgen-{n}", daemon=True)
    proc.start()
    result: dict[str, Any] = {"sessions_requested": n, "frame_ms": frame_ms, "load_avg_1m": _load_avg()}
    try:
        connected = await recv_from(parent, 180)
        if connected.get("event") != "connected":
            raise RuntimeError(f"load generator: {connected}")
        result["sessions_connected"] = connected["sessions"]
        result["connect_s"] = round(connected["connect_s"], 1)
        result["connect_failures"] = connected["failures"]
        await recv_from(parent, 30)  # streaming
        progress(f"capacity N={n} ({frame_ms} ms frames): {connected['sessions']} connected in {connected['connect_s']:.1f} s; warming up")
        await asyncio.sleep(warmup_s)
        await _plugin_call(astrbot, _clear_lags)
        model_before = (await plugin_status(astrbot)).get("end_of_turn_model") or {}
        psutil.cpu_percent(None)
        cpu0, t0 = me.cpu_times(), time.monotonic()
        rss = []
        while time.monotonic() - t0 < measure_s:
            await asyncio.sleep(min(1.0, measure_s - (time.monotonic() - t0)))
            rss.append(me.memory_info().rss)
        cpu1, t1 = me.cpu_times(), time.monotonic()
        machine_cpu = psutil.cpu_percent(None)
        status = await plugin_status(astrbot)
        lags = await _plugin_call(astrbot, _lags)
        parent.send("stop")
        done = await recv_from(parent, 60)
    finally:
        end_process(proc)
    if done.get("event") != "done":
        raise RuntimeError(f"load generator: {done}")
    window = t1 - t0
    server_cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / window
    streaming_s = done["elapsed_s"]
    pongs_window = [rtt for sent, rtt in done["pongs"] if t0 <= sent <= t1]  # the measurement window only
    lateness = [late for due, late in done["tick_lateness_ms"] if t0 <= due <= t1]
    sessions = result.get("sessions_connected", 0) or 1
    result.update({
        "window_s": round(window, 1),
        "vad_lag_p99_ms_status": status.get("vad_lag_p99_ms"),
        "vad_lag_ms": summary(lags),
        "receive_backlog_ms": summary(pongs_window),
        "server_cpu_cores": round(server_cpu, 3),
        "server_cpu_pct_per_session": round(100 * server_cpu / sessions, 3),
        "rss_growth_mb_per_session": round((max(rss) - baseline_rss) / 2**20 / sessions, 2),
        "machine_cpu_pct": machine_cpu,
        "rss_mb": round(max(rss) / 2**20, 1),
        "rss_growth_mb": round((max(rss) - baseline_rss) / 2**20, 1),
        "client_cpu_cores": round(done["client_cpu_s"] / max(streaming_s, 1e-6), 3),
        "other_cpu_cores": round(max(0.0, machine_cpu / 100 * (psutil.cpu_count() or 1) - server_cpu
                                     - done["client_cpu_s"] / max(streaming_s, 1e-6)), 2),
        "client_tick_lateness_ms": summary(lateness),
        "frames_sent_ratio": round(done["frames_sent"] / max(1, done["frames_expected"]), 3),
        "server_frames": done["counts"],
        "dropped_connections": done["dropped"],
        "end_of_turn": end_of_turn_summary(status, model_before, window),
    })  # fmt: skip
    p99 = result["vad_lag_ms"]["p99"]
    backlog = result["receive_backlog_ms"]["p99"]
    result["passed"] = bool(
        p99 is not None
        and p99 < LAG_LIMIT_MS
        and (backlog is None or backlog < LAG_LIMIT_MS)
        and result["sessions_connected"] == n
        and result["frames_sent_ratio"] >= 0.97
        and not result["dropped_connections"]
        and not any(k.startswith("error:RATE") for k in done["counts"])
    )
    progress(
        f"capacity N={n} ({frame_ms} ms frames): VAD lag p99 {p99} ms (status {status.get('vad_lag_p99_ms')}), receive backlog p99 "
        f"{backlog} ms, server {server_cpu:.2f} cores, {'PASS' if result['passed'] else 'FAIL'}"
    )
    remaining = await _wait_sessions(astrbot, 0)
    result["sessions_left_open"] = remaining
    return result


async def run_capacity(
    astrbot: Any,
    levels: list[int],
    *,
    warmup_s: float,
    measure_s: float,
    bisect_steps: int,
    budget_s: float,
    frame_ms: int = loadgen.FRAME_MS,
    fresh_server: bool = True,
    progress=lambda _m: None,
) -> dict:
    """Levels in order until one fails, then up to `bisect_steps` bisections between the last pass and
    the first failure, while the time budget lasts."""
    pcm, source = microphone_stream()
    # The host imports Quart on its first /api/plug/ request (~0.75 s of its event loop, +11 MB; the
    # plugin now imports it in a thread at load): read the status route once here, before any level's
    # window, so a level never measures that first request.
    await plugin_status(astrbot)
    gc.collect()  # sessions of an earlier part (or frame size) must not count as this part's baseline
    baseline = psutil.Process().memory_info().rss
    started = time.monotonic()
    results: list[dict] = []
    last_pass: int | None = None
    first_fail: int | None = None
    for n in levels:
        if time.monotonic() - started > budget_s:
            progress(f"capacity: time budget spent, skipping N={n}")
            break
        r = await run_level(astrbot, n, pcm=pcm, warmup_s=warmup_s, measure_s=measure_s, baseline_rss=baseline,
                            frame_ms=frame_ms, progress=progress)  # fmt: skip
        results.append(r)
        if r["passed"]:
            last_pass = n
        else:
            first_fail = n
            break
    steps = bisect_steps if first_fail is not None else 0
    while steps > 0 and time.monotonic() - started < budget_s:
        lo, hi = last_pass or 0, first_fail
        mid = (lo + hi) // 2
        if hi - lo <= 10 or mid <= lo:
            break
        r = await run_level(astrbot, mid, pcm=pcm, warmup_s=warmup_s, measure_s=measure_s, baseline_rss=baseline,
                            frame_ms=frame_ms, progress=progress)  # fmt: skip
        results.append(r)
        if r["passed"]:
            last_pass = mid
        else:
            first_fail = mid
        steps -= 1
    first = results[0] if results else None
    return {
        "levels": sorted(results, key=lambda r: r["sessions_requested"]),
        "rss_per_session_mb": round(first["rss_growth_mb"] / max(1, first.get("sessions_connected") or 1), 2)
        if first and fresh_server
        else None,  # an earlier part grew the heap: freed memory is reused, so growth says nothing
        "max_sessions_passing": last_pass,
        "first_failing": first_fail,
        "frame_ms": frame_ms,
        "warmup_s": warmup_s,
        "measure_s": measure_s,
        "client": "one asyncio ticker for all sessions writing pre-built masked WebSocket frames to each "
        f"socket every {frame_ms} ms, sessions spread over the period in {loadgen.TICK_MS} ms slots; websockets "
        "handles handshake, reads and close",
        "microphone": f"PCM16 16 kHz, {frame_ms} ms binary frames in real time; {CYCLE_S:.0f} s cycle: noise floor "
        f"(-60 dBFS) with one sentence ({source}); random phase per session",
        "baseline_rss_mb": round(baseline / 2**20, 1),
    }
