"""CPU cost of noise suppression (the `noise_suppression` setting) per server-VAD session.

Runs the VAD worker's own cycle (`live.engine.vad_worker._cycle`: RNNoise, then batched
Silero) on one thread over N sessions' microphones, as the server does, with and without
the denoiser, and reports the thread's CPU time per second of audio per session. The VAD
thread is one thread: the session count at which it would be busy all the time is
1000 ms / (cost per session), an upper bound for the capacity bench (which also wants
the VAD lag p99 under 50 ms, and shares the 2 cores with the event loop).

Audio: Piper speech (the bundled voice) with -50 dBFS white noise between sentences, in
the microphone's frame size, sessions offset in phase; RNNoise costs the same on speech
and noise (it only skips digital silence).

Run from the repository root (a few seconds; other load on the machine inflates it):
    .venv/bin/python bench/denoise_cost.py [--sessions 8] [--seconds 20] [--frame-ms 60]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from live.audio.denoise import StreamDenoiser, denoise_unavailable  # noqa: E402
from live.audio.resample import resample_pcm16  # noqa: E402
from live.audio.vad import Endpointer, VadSettings  # noqa: E402
from live.audio.vad_batch import VadClassifiers  # noqa: E402
from live.engine.vad_worker import _cycle  # noqa: E402

SENTENCES = ["What is the weather like today?", "Tell me a story about a dragon.", "How far is it to Paris?"]
NOISE_DBFS = -50.0


def microphone(seconds: float) -> np.ndarray:
    """`seconds` of 16 kHz PCM16: sentences separated by 2 s of noise, noise under everything."""
    try:
        from live.providers.piper_tts import PiperSynthesizer

        tts = PiperSynthesizer(noise_scale=0.0, noise_w_scale=0.0)
        tts.load()
        parts = [np.frombuffer(resample_pcm16(tts.synthesize(s), tts.sample_rate, 16000), "<i2") for s in SENTENCES]
        tts.close()
    except ImportError:  # no offline speech packages: speech-shaped noise costs RNNoise the same
        from tests.harness.audio import speech_like_pcm

        parts = [np.frombuffer(speech_like_pcm(2.0, seed=i), "<i2") for i in range(3)]
    gap = np.zeros(32000, dtype=np.int16)
    cycle = np.concatenate([p for part in parts for p in (part, gap)]).astype(np.float64)
    audio = np.resize(cycle, int(seconds * 16000))
    noise = np.random.default_rng(5).standard_normal(audio.size) * 32768 * 10 ** (NOISE_DBFS / 20)
    return np.clip(audio + noise, -32768, 32767).astype("<i2")


def thread_cpu_ms_per_session_second(audio: np.ndarray, sessions: int, frame_ms: int, denoise: bool) -> float:
    classifiers = VadClassifiers("auto")
    endpointers = [Endpointer(VadSettings(), classifiers.new()) for _ in range(sessions)]
    denoisers = [StreamDenoiser() if denoise else None for _ in range(sessions)]
    step = 16 * frame_ms
    offsets = [int(i * audio.size / sessions) for i in range(sessions)]
    streams = [np.roll(audio, -o).tobytes() for o in offsets]
    ends: list[int | None] = [None] * sessions
    start = time.thread_time()
    for pos in range(0, audio.size * 2, 2 * step):
        _cycle([(ep, dn, s[pos : pos + 2 * step]) for ep, dn, s in zip(endpointers, denoisers, streams)], ends)
    cpu_ms = (time.thread_time() - start) * 1000
    return cpu_ms / sessions / (audio.size / 16000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--frame-ms", type=int, default=60, help="microphone frame size (the Live page sends 60 ms)")
    parser.add_argument("--out", type=Path, help="also write the numbers as JSON")
    args = parser.parse_args()
    missing = denoise_unavailable()
    if missing:
        sys.exit(f"noise suppression unavailable: {missing[1]}")
    audio = microphone(args.seconds)
    vad = thread_cpu_ms_per_session_second(audio, args.sessions, args.frame_ms, denoise=False)
    both = thread_cpu_ms_per_session_second(audio, args.sessions, args.frame_ms, denoise=True)
    result = {
        "sessions": args.sessions,
        "frame_ms": args.frame_ms,
        "vad_ms_per_s": round(vad, 2),
        "vad_and_denoise_ms_per_s": round(both, 2),
        "denoise_ms_per_s": round(both - vad, 2),
        "vad_thread_saturates_at_sessions": int(1000 // both),
    }
    print(
        f"{args.sessions} sessions, {args.frame_ms} ms frames, {args.seconds:.0f} s of audio each, VAD thread CPU "
        f"per second of audio per session: VAD {vad:.1f} ms, VAD + RNNoise {both:.1f} ms "
        f"(RNNoise {both - vad:.1f} ms); the one VAD thread is busy all the time at ~{1000 // both:.0f} "
        f"sessions with noise suppression (~{1000 // vad:.0f} without)"
    )
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
