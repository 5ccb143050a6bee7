"""Benchmark of the embedded offline speech stack on this machine.

Measures VAD CPU per 30 ms of audio (silero and energy), whisper tiny.en
real-time factor, piper time to first chunk and total, per-session VAD memory,
and the full offline loop: end of speech -> first TTS audio, including the
end-of-speech silence the VAD must hear before it may fire.

The loop is measured without sleeping: the silence the VAD waits for is
counted as the audio time between the true end of speech and the stream
position at which SpeechEnded fired (that time passes in real life however
fast the CPU is); everything after it is wall-clock work (VAD, STT, TTS).
The LLM is not part of this loop: the reply text is fixed.

Run from the repository root:
    .venv/bin/python bench/offline_speech.py [--runs 12] [--out bench/results/offline_speech.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from live.audio.resample import resample_pcm16  # noqa: E402
from live.audio.vad import EnergyClassifier, Endpointer, SileroClassifier, SpeechEnded, VadSettings  # noqa: E402
from live.providers.piper_tts import PiperSynthesizer  # noqa: E402
from live.providers.whisper_stt import WhisperTranscriber  # noqa: E402

UTTERANCES = [
    "What is the weather like today?",
    "Tell me a story about a dragon.",
    "Can you remind me to call my mother at six in the evening?",
    "How far is it from London to Paris by train?",
]
REPLY = "Sure. It looks sunny this afternoon, with a light breeze from the west."
CHUNK_MS = 30


def summary(values: list[float]) -> dict[str, float]:
    """median, p95 (nearest rank) and n of a sample."""
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, max(0, int(round(0.95 * len(ordered))) - 1))]
    return {"median": statistics.median(ordered), "p95": p95, "n": len(ordered)}


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def noisy(pcm16: bytes, snr_db: float, seed: int) -> bytes:
    x = np.frombuffer(pcm16, "<i2").astype(np.float64)
    active = x[np.abs(x) > 0]
    noise = np.convolve(np.random.default_rng(seed).normal(size=x.size), np.ones(4) / 4, mode="same")
    noise *= np.sqrt(np.mean(active**2)) / np.sqrt(np.mean(noise**2)) / 10 ** (snr_db / 20)
    return np.clip(np.round(x + noise), -32768, 32767).astype("<i2").tobytes()


def speech_end_ms(pcm16: bytes) -> float:
    """End of speech in a clean clip: last 10 ms frame within 35 dB of the loudest."""
    x = np.frombuffer(pcm16, "<i2").astype(np.float64)
    frames = x[: x.size // 160 * 160].reshape(-1, 160)
    level = 10 * np.log10((frames**2).mean(axis=1) + 1e-9)
    return (np.where(level > level.max() - 35)[0][-1] + 1) * 10.0


def bench_vad(stream: bytes, runs: int) -> dict[str, dict]:
    """Wall time of Endpointer.feed per 30 ms chunk, scaled to µs; the engine's real call pattern."""
    out = {}
    step = CHUNK_MS * 32
    for name, make in (("silero", SileroClassifier), ("energy", EnergyClassifier)):
        samples: list[float] = []
        for _ in range(runs):
            ep = Endpointer(VadSettings(), make())
            for i in range(0, len(stream) - step + 1, step):
                t = time.perf_counter_ns()
                ep.feed(stream[i : i + step])
                samples.append((time.perf_counter_ns() - t) / 1000)
        s = summary(samples)
        s["mean"] = statistics.fmean(samples)
        out[name] = s
    return out


def bench_vad_session_cost(count: int = 20) -> tuple[float, float]:
    """(MB resident, ms to create) per extra SileroClassifier: each session owns one."""
    keep = [SileroClassifier()]  # the first instance also loads the shared library
    gc.collect()
    before = rss_mb()
    t = time.perf_counter()
    keep += [SileroClassifier() for _ in range(count)]
    create_ms = (time.perf_counter() - t) * 1000 / count
    for clf in keep:
        clf.speech_probability(np.zeros(512, dtype=np.int16))
    gc.collect()
    return (rss_mb() - before) / count, create_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=12, help="repetitions per measurement")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "offline_speech.json")
    args = parser.parse_args()
    settings = VadSettings()
    load_at_start = os.getloadavg()[0]  # the box is shared: a busy neighbour inflates every figure

    t = time.perf_counter()
    tts = PiperSynthesizer()
    tts.load()
    piper_load = time.perf_counter() - t
    t = time.perf_counter()
    stt = WhisperTranscriber("tiny.en", cpu_threads=2)
    stt.load()
    whisper_load = time.perf_counter() - t
    stt_full = WhisperTranscriber("tiny.en", cpu_threads=2, short_context=False)  # baseline: 30 s window
    stt_full.load()

    clips = [resample_pcm16(tts.synthesize(text), tts.sample_rate, 16000) for text in UTTERANCES]
    silence = b"\x00\x00" * 16000
    vad_stream = noisy(b"".join(silence + c for c in clips) + silence, 20, seed=0)
    for model in (stt, stt_full):  # warm-up: the first call allocates CTranslate2 buffers
        model.transcribe_pcm16(clips[0], 16000)
    list(tts.synthesize_chunks("Warm up."))

    vad = bench_vad(vad_stream, max(1, args.runs // 4))
    vad_mem, vad_create_ms = bench_vad_session_cost()

    rtf, stt_ms, full_ms, first_ms, total_ms, loop_ms, wait_ms = [], [], [], [], [], [], []
    for run in range(args.runs):
        clip = clips[run % len(clips)]
        stream = noisy(silence + clip + silence + silence, 20, seed=run)
        true_end = 1000 + speech_end_ms(clip)
        ep = Endpointer(settings, SileroClassifier())
        step = CHUNK_MS * 32
        for i in range(0, len(stream), step):
            t0 = time.perf_counter()
            ended = [e for e in ep.feed(stream[i : i + step]) if isinstance(e, SpeechEnded)]
            if ended:
                fired_at_ms = ep.position_ms
                break
        else:
            raise RuntimeError(f"VAD did not end utterance {run}")
        t1 = time.perf_counter()
        text = stt.transcribe_pcm16(ended[0].pcm, 16000)
        t2 = time.perf_counter()
        chunks = tts.synthesize_chunks(REPLY)
        next(chunks)
        t3 = time.perf_counter()
        for _ in chunks:
            pass
        t4 = time.perf_counter()
        stt_full.transcribe_pcm16(ended[0].pcm, 16000)
        full_ms.append((time.perf_counter() - t4) * 1000)
        if not text:
            raise RuntimeError(f"empty transcript for utterance {run}")
        audio_s = len(ended[0].pcm) / 32000
        rtf.append((t2 - t1) / audio_s)
        stt_ms.append((t2 - t1) * 1000)
        first_ms.append((t3 - t2) * 1000)
        total_ms.append((t4 - t2) * 1000)
        wait_ms.append(fired_at_ms - true_end)
        loop_ms.append(fired_at_ms - true_end + (t3 - t0) * 1000)

    results = {
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_at_start": load_at_start,
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "settings": {"silence_ms": settings.silence_ms, "chunk_ms": CHUNK_MS, "snr_db": 20, "runs": args.runs},
        "load_s": {"piper": round(piper_load, 3), "whisper_tiny_en": round(whisper_load, 3)},
        "vad_us_per_30ms_chunk": vad,
        "vad_silero_mb_per_session": round(vad_mem, 2),
        "vad_silero_create_ms": round(vad_create_ms, 1),
        "stt_rtf": summary(rtf),
        "stt_ms": summary(stt_ms),
        "stt_full_window_ms": summary(full_ms),
        "tts_first_chunk_ms": summary(first_ms),
        "tts_total_ms": summary(total_ms),
        "vad_wait_after_speech_ms": summary(wait_ms),
        "loop_end_of_speech_to_first_audio_ms": summary(loop_ms),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")

    rows = [
        ("VAD silero, µs per 30 ms chunk", vad["silero"], 0),
        ("VAD energy, µs per 30 ms chunk", vad["energy"], 0),
        ("STT tiny.en, real-time factor", results["stt_rtf"], 3),
        ("STT tiny.en, ms per utterance", results["stt_ms"], 0),
        ("STT tiny.en with the standard 30 s window, ms", results["stt_full_window_ms"], 0),
        ("TTS piper, first chunk ms", results["tts_first_chunk_ms"], 0),
        ("TTS piper, total ms (reply of 2 sentences)", results["tts_total_ms"], 0),
        (f"VAD wait after speech ms (silence_ms={settings.silence_ms})", results["vad_wait_after_speech_ms"], 0),
        ("Loop: end of speech -> first TTS audio, ms", results["loop_end_of_speech_to_first_audio_ms"], 0),
    ]
    print("| Measure | median | p95 | n |\n|---|---:|---:|---:|")
    for name, s, digits in rows:
        print(f"| {name} | {s['median']:.{digits}f} | {s['p95']:.{digits}f} | {s['n']} |")
    print(f"\nLoad average at start: {load_at_start:.2f} on {os.cpu_count()} cores.")
    print(f"Silero VAD per session: {vad_mem:.2f} MB RSS, {vad_create_ms:.0f} ms to create. "
          f"Load: piper {piper_load:.2f} s, whisper tiny.en {whisper_load:.2f} s (sha256 checks included).")
    print(f"Wrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")


if __name__ == "__main__":
    main()
