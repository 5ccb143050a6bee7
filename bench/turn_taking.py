"""Turn taking: when the user is done, thinking pauses, backchannels and real interruptions.

    .venv/bin/python bench/run.py --only turn_taking            # ~10 min; bench/results/turn_taking.{json,md}
    .venv/bin/python bench/run.py --only turn_taking --quick    # ~5 min; bench/results/quick/

A microphone streamed in real time (PCM16 16 kHz, 20 ms binary frames, paced on an absolute
schedule) over the plugin's `/api/v1/live/ws` of a booted AstrBot, server VAD on. The voice is the
bundled Piper voice (sampling noise off: identical audio every run) with white noise at -50 dBFS
under the whole stream, from connect to close. Scenarios:

- `complete`: a complete question, then the microphone keeps streaming the noise floor;
- `thinking`: a filler or unfinished phrase, a 600-900 ms pause, then the rest of the sentence;
- `backchannel`: while the character's (long) answer plays, "mm-hmm", "yeah", "okay", or a
  cough (a synthesized noise burst);
- `interruption`: while the answer plays, a real interruption ("Wait, stop. ...").

End-of-turn policies, side by side in the same run (interleaved scenario by scenario, each
scenario on a fresh socket opened with that policy's settings): `silence` (`end_of_turn=silence`,
500 ms), `model` (`end_of_turn=model`), `model+speculation` (`end_of_turn_speculation: true`;
"not available" when `_conf_schema.json` or `LiveSettings` does not have that setting).

Time zero of a turn is the end of the user's last word: the last 10 ms window of the Piper clip
above -45 dBFS, placed on the microphone's schedule (sample s of the stream is "spoken" at
t0 + s / 16000; a frame is sent when its last sample is spoken, as a real microphone delivers it).
The bench client connects with `pause_play=1` and counts an answer as ended only by `stop_play`
(or its `end` with `interrupted: true`); `pause_play` / `resume_play` are recorded when the server
sends them. The fake STT returns the scenario's transcript for every request (so a speculative
transcription or a split utterance gets words too); a cough is transcribed as "" (no words). In a
`thinking` scenario it hears what the upload holds: audio that ends before the second part's voice
(+100 ms) is the first part's words ("I need to, um,"), longer audio the whole sentence. The words
count (answering ahead weighs the transcript of a pause), so they are written with the scenario's
punctuation and case, as recognisers that punctuate (Whisper, the cloud APIs) write them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from tests.harness.fake_providers import _tokens

from .measure import CONVERSATIONS, LONG_REPLY, ProviderLatency, set_latency
from .stats import summary

REPO = Path(__file__).resolve().parents[1]
RATE = 16000
FRAME = 320  # samples: 20 ms
FRAME_S = FRAME / RATE
NOISE_DBFS = -50.0
PREROLL_S = 0.3  # vad_preroll_ms: audio kept from before the voice starts
VOICED_DBFS = -45.0  # a 10 ms window above this is speech (the clips are clean Piper audio)
SPECULATION_KEY = "end_of_turn_speculation"
PLUGIN_WS = "/api/v1/live/ws"

INSTANT = ProviderLatency(stt_s=0.0, ttft_s=0.0, token_s=0.005, tts_s=0.0)
REALISTIC = ProviderLatency()  # STT 150 ms, TTFT 300 ms then 30 ms per token, TTS 120 ms
PROVIDER_SETS = {"realistic": REALISTIC, "instant": INSTANT}
ANSWER = CONVERSATIONS[0].reply  # "Sure, it's sunny and warm today, ..."
FIRST_CLAUSE = "Sure, it's sunny and warm today,"  # spoken first (the first-clause fast path)
# As the fake LLM streams it: 7 tokens ("Sure,", " ", "it's ", ...), so 6 gaps between the first and the last.
FIRST_CLAUSE_TOKENS = len(_tokens(FIRST_CLAUSE))


def provider_floor_ms(lat: ProviderLatency) -> float:
    """What the providers alone take from the end of speech to the first clause's audio:
    STT + LLM to the first clause's last token + TTS of that clause."""
    return 1000 * (lat.stt_s + lat.ttft_s + (FIRST_CLAUSE_TOKENS - 1) * lat.token_s + lat.tts_s)


@dataclass(frozen=True)
class Policy:
    name: str
    config: dict[str, Any]  # plugin config keys, as in _conf_schema.json
    needs: str | None = None  # a config key that must exist for this policy to run


POLICIES = (  # speculation is named off where unwanted: its default may be on
    Policy("silence", {"end_of_turn": "silence", "vad_silence_ms": 500, SPECULATION_KEY: False}),
    Policy("model", {"end_of_turn": "model", "vad_silence_ms": 500, SPECULATION_KEY: False}),
    Policy("model+speculation", {"end_of_turn": "model", "vad_silence_ms": 500, SPECULATION_KEY: True},
           needs=SPECULATION_KEY),
)  # fmt: skip

COMPLETE = (
    "What is the weather like today?",
    "How far is the moon from the earth?",
    "Tell me a joke.",
    "What time is it?",
    "Could you turn off the lights in the kitchen?",
    "Can you recommend a good book to read?",
    "Where is the nearest train station?",
    "How do I make a cup of green tea?",
)
THINKING = (  # (before the pause, after it, pause ms between the last and the next voiced 10 ms)
    ("I need to, um,", "book a table for two people tonight.", 800),
    ("So I was thinking that maybe we could", "go to the beach on Saturday.", 700),
    ("And then we went to the", "old market near the river.", 650),
    ("Can you tell me, uh,", "how long it takes to get to the airport?", 900),
    ("I want to order, um,", "a large pizza with mushrooms.", 750),
    ("The thing is,", "I don't really like spicy food.", 600),
    ("What I'd like to know is", "whether the museum is open on Mondays.", 850),
    ("Let me think, hmm,", "I'll have the chicken salad, please.", 700),
)
BACKCHANNELS = (  # (name, Piper text or None for the cough, what the STT hears)
    ("mm-hmm", "Mm-hmm.", "mm-hmm"),
    ("yeah", "Yeah.", "yeah"),
    ("okay", "Okay.", "okay"),
    ("cough", None, ""),
)
INTERRUPTIONS = (
    "Wait, stop. What about tomorrow?",
    "No, that's not what I asked.",
    "Hold on, can you say that again more slowly?",
    "Actually, let's talk about something else.",
)
STORY_REQUEST = "Tell me a story about a lighthouse."
SHORT_REPLY = "Okay."


# ---------------------------------------------------------------- audio


@dataclass(frozen=True)
class Clip:
    """Clean speech (or a cough) as float samples, with where its voice starts and ends."""

    samples: np.ndarray
    voiced_start: int  # first sample of the first window above VOICED_DBFS
    voiced_end: int  # one past the last sample of the last such window

    @property
    def voiced_ms(self) -> float:
        return (self.voiced_end - self.voiced_start) * 1000 / RATE


def voiced_bounds(samples: np.ndarray, window: int = 160) -> tuple[int, int]:
    n = samples.size // window
    if n == 0:
        raise ValueError("clip too short")
    rms = np.sqrt((samples[: n * window].reshape(n, window) ** 2).mean(axis=1) + 1e-9)
    loud = np.nonzero(20 * np.log10(rms / 32768) > VOICED_DBFS)[0]
    if loud.size == 0:
        raise ValueError("clip has no voiced window")
    return int(loud[0] * window), int((loud[-1] + 1) * window)


def clip_of(pcm: bytes) -> Clip:
    x = np.frombuffer(pcm, "<i2").astype(np.float64)
    start, end = voiced_bounds(x)
    return Clip(x, start, end)


def with_pause(first: Clip, second: Clip, pause_ms: int) -> tuple[Clip, int, int]:
    """`first` up to its last voiced window, `pause_ms` of silence, `second` from its first voiced
    window. Returns the clip and where the first part's voice ends and the second's starts."""
    gap = np.zeros(pause_ms * RATE // 1000)
    head = first.samples[: first.voiced_end]
    tail = second.samples[second.voiced_start :]
    joined = np.concatenate([head, gap, tail])
    resume = head.size + gap.size
    return Clip(joined, first.voiced_start, resume + (second.voiced_end - second.voiced_start)), head.size, resume


def cough(seed: int = 5) -> Clip:
    """A dry cough close to the microphone: a sharp broadband burst (300-4000 Hz) with a short
    voiced onset, ~10 ms attack and 90 ms decay, peaking near -8 dBFS."""
    rng = np.random.default_rng(seed)
    n = int(0.40 * RATE)
    t = np.arange(n) / RATE
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    spectrum[(freqs < 300) | (freqs > 4000)] = 0
    burst = np.fft.irfft(spectrum, n)
    burst /= np.sqrt(np.mean(burst**2))
    voiced = 0.6 * np.sin(2 * np.pi * 170 * t) * (t < 0.12)
    envelope = np.minimum(t / 0.010, 1.0) * np.exp(-t / 0.090)
    x = (burst + voiced) * envelope
    x *= 32768 * 10 ** (-8 / 20) / np.max(np.abs(x))
    lead = np.zeros(int(0.05 * RATE))
    x = np.concatenate([lead, x, lead])
    start, end = voiced_bounds(x)
    return Clip(x, start, end)


def noise_floor(seconds: float = 10.0, dbfs: float = NOISE_DBFS, seed: int = 17) -> np.ndarray:
    """White noise at `dbfs` RMS: a quiet room under the whole microphone stream (looped)."""
    return np.random.default_rng(seed).standard_normal(int(seconds * RATE)) * 32768 * 10 ** (dbfs / 20)


@dataclass
class Voices:
    """Every clip of the suite, synthesized once before anything is timed."""

    complete: dict[str, Clip]
    thinking: dict[str, tuple[Clip, int, int]]
    backchannel: dict[str, Clip]
    interruption: dict[str, Clip]


def make_voices(say: Callable[[str], bytes], plan: Plan | None = None) -> Voices:
    """`say(text)`: PCM16 16 kHz mono speech (the bundled Piper voice); the clips `plan` uses."""
    plan = plan or FULL
    return Voices(
        complete={text: clip_of(say(text)) for text in COMPLETE[: max(1, plan.complete)]},
        thinking={a: with_pause(clip_of(say(a)), clip_of(say(b)), pause) for a, b, pause in THINKING[: plan.thinking]},
        backchannel={name: clip_of(say(text)) if text else cough() for name, text, _ in BACKCHANNELS
                     if name in plan.backchannels},  # fmt: skip
        interruption={text: clip_of(say(text)) for text in INTERRUPTIONS[: plan.interruptions]},
    )


def piper_say() -> tuple[Callable[[str], bytes], Callable[[], None]]:
    """The bundled Piper voice with its sampling noise off; (say, close)."""
    from live.audio.resample import resample_pcm16
    from live.providers.models import OFFLINE_INSTALL_HINT, missing_offline_packages

    missing = missing_offline_packages(stt=False, tts=True)
    if missing:
        raise RuntimeError(f"the turn-taking bench needs Piper ({', '.join(missing)}): {OFFLINE_INSTALL_HINT}")
    from live.providers.piper_tts import PiperSynthesizer

    tts = PiperSynthesizer(noise_scale=0.0, noise_w_scale=0.0)
    tts.load()
    return (lambda text: resample_pcm16(tts.synthesize(text), tts.sample_rate, RATE)), tts.close


# ---------------------------------------------------------------- the microphone


@dataclass(frozen=True)
class Placed:
    """Where a clip went on the microphone's timeline (monotonic seconds)."""

    start_at: float
    voiced_start_at: float
    voiced_end_at: float
    end_at: float


class Mic:
    """A real-time microphone: 20 ms binary frames of the noise floor, with clips mixed in.

    Frame k holds samples [320k, 320k + 320) and is sent at t0 + (k + 1) * 20 ms, when its last
    sample has been "spoken"; the schedule is absolute, so a late frame does not shift the next.
    """

    def __init__(self, send: Callable[[bytes], Any], noise: np.ndarray) -> None:
        self._send = send
        self._noise = noise
        self._clips: list[tuple[int, np.ndarray]] = []  # (first stream sample, samples)
        self._built = 0  # frames built so far: a clip placed now starts at the next one
        self.t0 = 0.0
        self.lateness_ms: list[float] = []
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self.t0 = time.monotonic()
        self._task = asyncio.create_task(self._run(), name="bench-mic")

    def at(self, sample: int) -> float:
        return self.t0 + sample / RATE

    def now_sample(self) -> int:
        return self._built * FRAME

    def play(self, clip: Clip) -> Placed:
        first = self._built * FRAME
        self._clips.append((first, clip.samples))
        return Placed(self.at(first), self.at(first + clip.voiced_start), self.at(first + clip.voiced_end),
                      self.at(first + clip.samples.size))  # fmt: skip

    async def say(self, clip: Clip) -> Placed:
        """Play `clip` and return once its last frame has been sent."""
        placed = self.play(clip)
        await asyncio.sleep(max(0.0, placed.end_at - time.monotonic()) + FRAME_S)
        return placed

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    def _frame(self, k: int) -> bytes:
        lo, hi = k * FRAME, (k + 1) * FRAME
        x = np.take(self._noise, np.arange(lo, hi), mode="wrap")
        keep = []
        for first, samples in self._clips:
            a, b = max(lo, first), min(hi, first + samples.size)
            if a < b:
                x[a - lo : b - lo] += samples[a - first : b - first]
            if first + samples.size > hi:
                keep.append((first, samples))
        self._clips = keep
        return np.clip(np.round(x), -32768, 32767).astype("<i2").tobytes()

    async def _run(self) -> None:
        while True:
            due = self.t0 + (self._built + 1) * FRAME_S
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self.lateness_ms.append(max(0.0, time.monotonic() - due) * 1000)
            frame = self._frame(self._built)
            self._built += 1
            await self._send(frame)


# ---------------------------------------------------------------- the socket


class Listener:
    """Reads every frame of a `LiveClient` in the background (arrival times in `_at`)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.frames: list[dict] = client.frames
        self._new = asyncio.Event()
        self._task = asyncio.create_task(self._read(), name="bench-listener")

    async def _read(self) -> None:
        with contextlib.suppress(Exception):  # the socket closed: the scenario reads what came
            while True:
                await self.client.recv(timeout=3600)
                self._new.set()

    async def wait(self, match: Callable[[dict], bool], until: float) -> dict | None:
        """The first frame (already received or to come) matching `match`, or None at `until`."""
        i = 0
        while True:
            while i < len(self.frames):
                frame = self.frames[i]
                i += 1
                if match(frame):
                    return frame
            remaining = until - time.monotonic()
            if remaining <= 0:
                return None
            self._new.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait(), remaining)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.client.close()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task


def of_type(kind: str, turn: str | None = None, after: float | None = None) -> Callable[[dict], bool]:
    return lambda f: (f.get("t") == kind and (turn is None or f.get("turn") == turn)
                      and (after is None or f["_at"] >= after))  # fmt: skip


# ---------------------------------------------------------------- policies


def _schema() -> dict:
    return json.loads((REPO / "_conf_schema.json").read_text(encoding="utf-8"))


def _fields_read(key: str, values: tuple[Any, Any]) -> set[str]:
    """The `LiveSettings` fields that config `key` sets (those that differ between two values)."""
    from live.config import LiveSettings

    a, b = (LiveSettings.from_config({key: v}) for v in values)
    return {f.name for f in dataclasses.fields(LiveSettings) if getattr(a, f.name) != getattr(b, f.name)}


_PROBES: dict[str, tuple[Any, Any]] = {
    "end_of_turn": ("model", "silence"),
    "vad_silence_ms": (500, 900),
    SPECULATION_KEY: (True, False),
    "end_of_turn_pause_ms": (200, 150),
}


def unavailable_reason(policy: Policy) -> str | None:
    """Why `policy` cannot run on this code (None: it can)."""
    if policy.needs is None:
        return None
    if policy.needs not in _schema():
        return f"the setting `{policy.needs}` is not in _conf_schema.json"
    if not _fields_read(policy.needs, _PROBES[policy.needs]):
        return f"LiveSettings.from_config does not read `{policy.needs}`"
    return None


def policy_settings(base: Any, policy: Policy) -> Any:
    """`base` (the running LiveSettings) with the policy's config keys applied the way the plugin reads them."""
    from live.config import LiveSettings

    target = LiveSettings.from_config(policy.config)
    names: set[str] = set()
    for key in policy.config:
        names |= _fields_read(key, _PROBES[key])
    return dataclasses.replace(base, **{name: getattr(target, name) for name in names})


class Server:
    """The booted AstrBot, as the suite uses it: settings per policy, a socket per scenario."""

    def __init__(self, astrbot: Any, fake: Any) -> None:
        self.astrbot = astrbot
        self.fake = fake
        self.base = None
        self.run_id = uuid.uuid4().hex[:8]

    async def _on_server(self, fn: Callable[[Any], Any]) -> Any:
        async def run():
            return fn(self.astrbot.plugin())

        return await asyncio.to_thread(self.astrbot.call, run)

    async def save(self) -> None:
        self.base = await self._on_server(lambda plugin: plugin.settings)

    async def restore(self) -> None:
        base = self.base

        def put(plugin):
            plugin.settings = base

        if base is not None:
            await self._on_server(put)

    async def use(self, policy: Policy) -> None:
        settings = policy_settings(self.base, policy)

        def put(plugin):
            plugin.settings = settings

        await self._on_server(put)

    async def model_state(self) -> dict:
        def read(plugin):
            worker = plugin.server.end_of_turn
            if worker is None:
                return {"state": "absent"}
            return {"state": worker.state, "reason": getattr(worker, "reason", None)}

        return await self._on_server(read)

    async def open(self, policy: Policy) -> tuple[Any, Listener, dict]:
        """A fresh socket with `policy`'s settings, on that policy's own conversation."""
        from tests.harness.live_client import LiveClient

        await self.use(policy)
        conversation = f"tt-{self.run_id}-{policy.name.replace('+', '-')}"
        url = self.astrbot.ws_url(PLUGIN_WS, token=self.astrbot.jwt("bench-tt"), conversation_id=conversation,
                                  pause_play=1)  # fmt: skip
        client = await LiveClient.open(url)
        listener = Listener(client)
        hello = await listener.wait(of_type("hello"), time.monotonic() + 15)
        if hello is None:
            await listener.close()
            raise RuntimeError("no hello frame")
        return client, listener, hello.get("data", {})

    def script(self, transcript: str, reply: str, lat: ProviderLatency) -> None:
        fake = self.fake
        set_latency(fake, lat)
        with fake._lock:
            fake.replies.clear()
            fake.transcripts.clear()
            fake.default_transcript = transcript  # every STT request of this scenario hears it ...
            fake.heard_by_length = []  # ... unless the scenario says what each length of upload holds
            fake.default_reply = SHORT_REPLY
        fake.script_reply(reply, ttft=lat.ttft_s, interval=lat.token_s)


# ---------------------------------------------------------------- scenarios


@dataclass
class Sample:
    kind: str
    policy: str
    providers: str
    item: str
    ok: bool = False
    error: str | None = None
    end_decided_ms: float | None = None  # end of the user's last word -> `vad` speech_end (the end decided)
    user_msg_ms: float | None = None  # -> user_msg
    first_audio_ms: float | None = None  # -> first response audio of that turn
    user_msgs: int = 0
    ended_turn_in_pause: bool | None = None  # thinking: the pause ended a turn
    pause_eot: dict = field(default_factory=dict)  # thinking, split: what ended the turn in the pause
    answer_ended: bool | None = None  # backchannel / interruption: stop_play or end{interrupted}
    pause_play_ms: float | None = None  # voiced start of the listener's sound -> pause_play
    resume_play_ms: float | None = None  # voiced end -> resume_play
    stop_play_ms: float | None = None  # voiced start -> stop_play
    stop_play_after_end_ms: float | None = None  # voiced end -> stop_play
    notice: str | None = None  # the reason of a `transcript_empty` after the sound (backchannel, noise, ...)
    voiced_ms: float | None = None
    pause_ms: int | None = None
    eot: dict = field(default_factory=dict)  # the turn's eot_* metrics (and any speculation fields)
    server_timeline: dict = field(default_factory=dict)
    frames: list[tuple[float, str, str | None]] = field(default_factory=list)  # (ms after the reference, t, turn)
    errors: list[dict] = field(default_factory=list)
    mic_late_p95_ms: float | None = None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _turn_metrics(frame: dict | None) -> tuple[dict, dict]:
    if frame is None:
        return {}, {}
    data = frame.get("data") or {}
    picked = {k: v for k, v in data.items() if k.startswith(("eot_", "spec"))}
    return picked, data.get("timeline") or {}


def _ms(at: float | None, ref: float) -> float | None:
    return None if at is None else round((at - ref) * 1000, 1)


def _finish(sample: Sample, listener: Listener, mic: Mic, ref: float, since: float) -> None:
    text_only = ("response", "bot_delta_chunk", "bot_text_chunk")
    sample.frames = [(_ms(f["_at"], ref), f.get("t"), f.get("turn")) for f in listener.frames
                     if f["_at"] >= since and f.get("t") not in text_only]  # fmt: skip
    sample.errors = [{k: v for k, v in f.items() if k != "_at"} for f in listener.frames if f.get("t") == "error"]
    lateness = summary(mic.lateness_ms)
    sample.mic_late_p95_ms = lateness["p95"]


async def _after_speech(listener: Listener, sample: Sample, speech_end: float, *, wait_s: float) -> None:
    """The turn that follows the user's last word: its end, user_msg, first audio and metrics."""
    ended = await listener.wait(lambda f: f.get("t") == "vad" and (f.get("data") or {}).get("state") == "speech_end"
                                and f["_at"] >= speech_end, speech_end + wait_s)  # fmt: skip
    sample.end_decided_ms = _ms(ended["_at"], speech_end) if ended else None
    user = await listener.wait(of_type("user_msg", after=speech_end), speech_end + wait_s)
    if user is None:
        sample.error = "no user_msg after the utterance"
        return
    turn = user.get("turn")
    sample.user_msg_ms = _ms(user["_at"], speech_end)
    audio = await listener.wait(of_type("response", turn), user["_at"] + wait_s)
    if audio is None:
        sample.error = "no audio for the turn"
        return
    sample.first_audio_ms = _ms(audio["_at"], speech_end)
    metrics = await listener.wait(of_type("metrics", turn), audio["_at"] + 8)
    sample.eot, sample.server_timeline = _turn_metrics(metrics)
    sample.ok = True


async def run_complete(server: Server, policy: Policy, providers: str, text: str, clip: Clip) -> Sample:
    sample = Sample("complete", policy.name, providers, text, voiced_ms=round(clip.voiced_ms))
    server.script(text, ANSWER, PROVIDER_SETS[providers])
    client, listener, _ = await server.open(policy)
    mic = Mic(client.send_raw, noise_floor())
    mic.start()
    since = time.monotonic()
    speech_end = since
    try:
        await asyncio.sleep(0.5)
        placed = await mic.say(clip)
        speech_end = placed.voiced_end_at
        await _after_speech(listener, sample, speech_end, wait_s=8)
        sample.user_msgs = sum(1 for f in listener.frames if f.get("t") == "user_msg")
    finally:
        await mic.stop()
        _finish(sample, listener, mic, speech_end, since)
        await listener.close()
    return sample


async def run_thinking(server: Server, policy: Policy, providers: str, item: tuple, clip: tuple) -> Sample:
    first, rest, pause_ms = item
    joined, first_end, rest_start = clip
    sample = Sample("thinking", policy.name, providers, f"{first} ... {rest}", pause_ms=pause_ms,
                    voiced_ms=round(joined.voiced_ms))  # fmt: skip
    server.script(f"{first} {rest}", ANSWER, PROVIDER_SETS[providers])
    # An upload starts ~preroll (300 ms) before the voice; one that ends before the second part's
    # voice (+100 ms) holds only the first part.
    first_only_s = (rest_start - joined.voiced_start) / RATE + PREROLL_S + 0.1
    server.fake.heard_by_length = [(first_only_s, first), (float("inf"), f"{first} {rest}")]
    client, listener, _ = await server.open(policy)
    mic = Mic(client.send_raw, noise_floor())
    mic.start()
    since = time.monotonic()
    speech_end = since
    try:
        await asyncio.sleep(0.5)
        placed = await mic.say(joined)
        speech_end = placed.voiced_end_at
        await _after_speech(listener, sample, speech_end, wait_s=8)
        await asyncio.sleep(0.3)  # a late frame of a split turn
        user_msgs = [f for f in listener.frames if f.get("t") == "user_msg"]
        sample.user_msgs = len(user_msgs)
        # The pause ended a turn when any turn was taken before the whole sentence was said
        # (the first part answered or cut as a turn of its own): more than one user_msg.
        sample.ended_turn_in_pause = len(user_msgs) > 1
        if sample.ended_turn_in_pause:  # that turn's metrics, when it completed (while paused) before the cut
            first = user_msgs[0].get("turn")
            metrics = next((f for f in listener.frames if f.get("t") == "metrics" and f.get("turn") == first), None)
            sample.pause_eot = _turn_metrics(metrics)[0] or {"eot_reason": "unknown (cut before its metrics)"}
    finally:
        await mic.stop()
        _finish(sample, listener, mic, speech_end, since)
        await listener.close()
    return sample


async def run_during_answer(
    server: Server, policy: Policy, kind: str, name: str, transcript: str, clip: Clip, lead_s: float
) -> Sample:
    """While a long answer plays (`lead_s` after its first audio), the user makes a sound."""
    sample = Sample(kind, policy.name, "realistic", name, voiced_ms=round(clip.voiced_ms))
    server.script(transcript, LONG_REPLY, REALISTIC)
    client, listener, _ = await server.open(policy)
    mic = Mic(client.send_raw, noise_floor())
    mic.start()
    since = time.monotonic()
    ref = since
    try:
        await asyncio.sleep(0.3)
        await client.send({"t": "text_input", "text": STORY_REQUEST})
        user = await listener.wait(of_type("user_msg"), time.monotonic() + 10)
        if user is None:
            sample.error = "the story was not asked"
            return sample
        answer = user.get("turn")
        audio = await listener.wait(of_type("response", answer), time.monotonic() + 10)
        if audio is None:
            sample.error = "the story never played"
            return sample
        await asyncio.sleep(max(0.0, audio["_at"] + lead_s - time.monotonic()))
        placed = await mic.say(clip)
        ref = placed.voiced_end_at
        stopped = lambda f: f.get("turn") == answer and (  # noqa: E731
            f.get("t") == "stop_play" or (f.get("t") == "end" and (f.get("data") or {}).get("interrupted"))
        )
        early = next((f for f in listener.frames if stopped(f) and f["_at"] < placed.start_at), None)
        if early is not None:
            sample.error = f"the answer was stopped before the user's sound ({early['t']})"
            return sample
        # Long enough for the longest end-of-turn wait (2.5 s), the transcript and the decision.
        ended = await listener.wait(stopped, placed.voiced_end_at + 4.0)
        stop = next((f for f in listener.frames if f.get("t") == "stop_play" and f.get("turn") == answer), None)
        pause = next((f for f in listener.frames if f.get("t") == "pause_play" and f["_at"] >= placed.start_at), None)
        resume = next((f for f in listener.frames if f.get("t") == "resume_play" and f["_at"] >= placed.start_at), None)
        sample.answer_ended = ended is not None
        sample.stop_play_ms = _ms(stop["_at"], placed.voiced_start_at) if stop else None
        sample.stop_play_after_end_ms = _ms(stop["_at"], placed.voiced_end_at) if stop else None
        sample.pause_play_ms = _ms(pause["_at"], placed.voiced_start_at) if pause else None
        sample.resume_play_ms = _ms(resume["_at"], placed.voiced_end_at) if resume else None
        sample.user_msgs = sum(1 for f in listener.frames if f.get("t") == "user_msg" and f["_at"] > placed.start_at)
        notice = next((f for f in listener.frames if f.get("t") == "transcript_empty" and f["_at"] >= placed.start_at),
                      None)  # fmt: skip
        sample.notice = (notice.get("data") or {}).get("reason") if notice else None
        sample.ok = True
    finally:
        await mic.stop()
        _finish(sample, listener, mic, ref, since)
        await listener.close()
    return sample


# ---------------------------------------------------------------- the suite


@dataclass(frozen=True)
class Plan:
    complete: int = len(COMPLETE)  # questions per provider set and policy
    thinking: int = len(THINKING)
    backchannel_rounds: int = 2  # each backchannel (and the cough) this many times per policy
    backchannels: tuple[str, ...] = tuple(name for name, _, _ in BACKCHANNELS)
    interruptions: int = len(INTERRUPTIONS)
    provider_sets: tuple[str, ...] = ("realistic", "instant")
    kinds: tuple[str, ...] = ("complete", "thinking", "backchannel", "interruption")


FULL = Plan()
QUICK = Plan(complete=3, thinking=3, backchannel_rounds=1, interruptions=2)


async def wait_model_ready(server: Server, policies: list[Policy], timeout: float = 60) -> dict:
    """Open a model-mode socket (that loads the model) and wait until it is ready."""
    model_policy = next((p for p in policies if p.config.get("end_of_turn") == "model"), None)
    if model_policy is None:
        return {"state": "not used"}
    client, listener, _ = await server.open(model_policy)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = await server.model_state()
            if state["state"] in ("ready", "unavailable", "absent"):
                return state
            await asyncio.sleep(0.2)
        return await server.model_state()
    finally:
        await listener.close()


def _rotated(policies: list[Policy], i: int) -> list[Policy]:
    """Who goes first rotates item by item, so drift hits every policy alike."""
    k = i % len(policies)
    return policies[k:] + policies[:k]


async def run_suite(
    astrbot: Any,
    fake: Any,
    voices: Voices,
    *,
    plan: Plan = FULL,
    policies: tuple[Policy, ...] = POLICIES,
    warmup: bool = True,
    progress: Callable[[str], None] = lambda _m: None,
) -> dict:
    """Every scenario of `plan` under every available policy; returns the summary and the samples."""
    server = Server(astrbot, fake)
    await server.save()
    code = await asyncio.to_thread(code_version)  # the code the booted server runs (loaded before now)
    unavailable = {p.name: r for p in policies if (r := unavailable_reason(p))}
    active = [p for p in policies if p.name not in unavailable]
    for name, why in unavailable.items():
        progress(f"turn taking: policy {name} not available: {why}")
    samples: list[Sample] = []
    started = time.monotonic()
    machine_cpu, own_cpu = psutil.cpu_times(), psutil.Process().cpu_times()
    load_before = _load_avg()
    saved_fake = (fake.default_transcript, fake.default_reply)
    try:
        model = await wait_model_ready(server, active)
        progress(f"turn taking: end-of-turn model {model}")
        if warmup:  # the conversations' first turns (history, title) are not counted
            for policy in active:
                await run_complete(server, policy, "realistic", COMPLETE[0], voices.complete[COMPLETE[0]])

        def note(s: Sample) -> None:
            samples.append(s)
            detail = s.error or (
                f"user_msg {s.user_msg_ms} ms, first audio {s.first_audio_ms} ms, eot {s.eot.get('eot_reason')}"
                if s.kind in ("complete", "thinking") else
                f"ended {s.answer_ended}, pause_play {s.pause_play_ms}, stop_play {s.stop_play_ms} ms"
            )  # fmt: skip
            progress(f"turn taking: {s.kind:12s} {s.policy:18s} {s.providers:9s} {s.item[:40]!r}: {detail}")

        i = 0
        if "complete" in plan.kinds:
            for providers in plan.provider_sets:
                for text in COMPLETE[: plan.complete]:
                    for policy in _rotated(active, i):
                        note(await run_complete(server, policy, providers, text, voices.complete[text]))
                    i += 1
        if "thinking" in plan.kinds:
            for item in THINKING[: plan.thinking]:
                for policy in _rotated(active, i):
                    note(await run_thinking(server, policy, "realistic", item, voices.thinking[item[0]]))
                i += 1
        if "backchannel" in plan.kinds:
            for r in range(plan.backchannel_rounds):
                for j, (name, _text, transcript) in enumerate(b for b in BACKCHANNELS if b[0] in plan.backchannels):
                    lead = 1.0 + 0.25 * ((r * len(BACKCHANNELS) + j) % 5)  # 1.0-2.0 s into the answer
                    for policy in _rotated(active, i):
                        note(await run_during_answer(server, policy, "backchannel", name, transcript,
                                                     voices.backchannel[name], lead))  # fmt: skip
                    i += 1
        if "interruption" in plan.kinds:
            for j, text in enumerate(INTERRUPTIONS[: plan.interruptions]):
                for policy in _rotated(active, i):
                    note(await run_during_answer(server, policy, "interruption", text, text.lower(),
                                                 voices.interruption[text], 1.0 + 0.25 * j))  # fmt: skip
                i += 1
        model_after = await server.model_state()
    finally:
        await server.restore()
        with fake._lock:
            fake.default_transcript, fake.default_reply = saved_fake
    return {
        "summary": summarize(samples, [p.name for p in policies], unavailable),
        "policies": {p.name: {"config": p.config, "available": p.name not in unavailable,
                              "unavailable_reason": unavailable.get(p.name)} for p in policies},  # fmt: skip
        "providers": {name: dataclasses.asdict(lat) for name, lat in PROVIDER_SETS.items()},
        "plan": dataclasses.asdict(plan),
        "end_of_turn_model": {"before": model, "after": model_after},
        "pause_play_frames_seen": sum(1 for s in samples for f in s.frames if f[1] in ("pause_play", "resume_play")),
        "voices": {
            "complete_voiced_ms": {k: round(v.voiced_ms) for k, v in voices.complete.items()},
            "backchannel_voiced_ms": {k: round(v.voiced_ms) for k, v in voices.backchannel.items()},
        },
        "code": code,
        "duration_s": round(time.monotonic() - started, 1),
        # This process is the server and the client; the rest of the machine was busy with this much.
        "other_processes_cores": _other_cores(machine_cpu, own_cpu, time.monotonic() - started),
        "this_process_cores": _own_cores(own_cpu, time.monotonic() - started),
        "load_avg_1m": {"before": load_before, "after": _load_avg()},
        "samples": [s.as_dict() for s in samples],
    }


def _load_avg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _own_cores(own0: Any, elapsed: float) -> float:
    own1 = psutil.Process().cpu_times()
    return round((own1.user + own1.system - own0.user - own0.system) / max(elapsed, 1e-6), 2)


def _other_cores(machine0: Any, own0: Any, elapsed: float) -> float:
    machine1 = psutil.cpu_times()
    busy = (machine1.user + machine1.system - machine0.user - machine0.system) / max(elapsed, 1e-6)
    return round(max(0.0, busy - _own_cores(own0, elapsed)), 2)


# ---------------------------------------------------------------- summary


def _count(values) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[str(v)] = out.get(str(v), 0) + 1
    return out


def _speculation(ok: list[Sample]) -> dict:
    """What speculation did in these turns (the turn metrics' `speculation*` fields)."""
    return {
        "speculation": _count(s.eot.get("speculation") for s in ok if "speculation" in s.eot),
        "speculation_saved_ms": summary(s.eot.get("speculation_saved_ms") for s in ok),
        "speculations_dropped": sum(s.eot.get("speculations_dropped") or 0 for s in ok),
    }


def summarize(samples: list[Sample], policy_names: list[str], unavailable: dict[str, str]) -> dict:
    out: dict[str, Any] = {}
    for name in policy_names:
        if name in unavailable:
            out[name] = {"available": False, "reason": unavailable[name]}
            continue
        mine = [s for s in samples if s.policy == name]
        row: dict[str, Any] = {"available": True}
        for providers in PROVIDER_SETS:
            done = [s for s in mine if s.kind == "complete" and s.providers == providers]
            if not done:
                continue
            ok = [s for s in done if s.ok]
            row[f"complete_{providers}"] = {
                "end_decided_ms": summary(s.end_decided_ms for s in ok),
                "user_msg_ms": summary(s.user_msg_ms for s in ok),
                "first_audio_ms": summary(s.first_audio_ms for s in ok),
                "eot_silence_ms": summary(s.eot.get("eot_silence_ms") for s in ok),
                "eot_reasons": _count(s.eot.get("eot_reason") for s in ok),
                "eot_fallbacks": _count(s.eot.get("eot_fallback") for s in ok if s.eot.get("eot_fallback")),
                "eot_model_ms": summary(s.eot.get("eot_model_ms") for s in ok),
                **_speculation(ok),
                "provider_floor_ms": provider_floor_ms(PROVIDER_SETS[providers]),
                "first_audio_above_floor_ms": summary(
                    s.first_audio_ms - provider_floor_ms(PROVIDER_SETS[providers]) for s in ok
                ),
                "extra_user_msgs": sum(1 for s in ok if s.user_msgs > 1),
                "failed": len(done) - len(ok),
                "n": len(done),
            }
        thinking = [s for s in mine if s.kind == "thinking"]
        if thinking:
            ended = sum(1 for s in thinking if s.ended_turn_in_pause)
            ok = [s for s in thinking if s.ok]
            row["thinking"] = {
                "ended_turn": ended,
                "n": len(thinking),
                "ended_pct": round(100 * ended / len(thinking), 1),
                "whole_utterance_user_msg_ms": summary(s.user_msg_ms for s in ok if not s.ended_turn_in_pause),
                "whole_utterance_first_audio_ms": summary(s.first_audio_ms for s in ok if not s.ended_turn_in_pause),
                "eot_reasons": _count(s.eot.get("eot_reason") for s in ok),
                "eot_fallbacks": _count(s.eot.get("eot_fallback") for s in ok if s.eot.get("eot_fallback")),
                "in_pause": {  # what ended the turns that the pause ended
                    "eot_reasons": _count(s.pause_eot.get("eot_reason") for s in thinking if s.ended_turn_in_pause),
                    "eot_fallbacks": _count(s.pause_eot.get("eot_fallback") for s in thinking
                                            if s.ended_turn_in_pause and s.pause_eot.get("eot_fallback")),
                },  # fmt: skip
                **_speculation(ok),
                "failed": len(thinking) - len(ok),
            }
        for kind in ("backchannel", "interruption"):
            runs = [s for s in mine if s.kind == kind]
            if not runs:
                continue
            ok = [s for s in runs if s.ok]
            by_item: dict[str, dict] = {}
            for s in ok:
                item = by_item.setdefault(s.item if kind == "backchannel" else "all", {"ended": 0, "n": 0})
                item["ended"] += bool(s.answer_ended)
                item["n"] += 1
            row[kind] = {
                "ended": sum(1 for s in ok if s.answer_ended),
                "n": len(ok),
                "by_item": by_item,
                "paused": sum(1 for s in ok if s.pause_play_ms is not None),
                "resumed": sum(1 for s in ok if s.resume_play_ms is not None),
                "notices": _count(s.notice for s in ok if s.notice),
                "pause_play_ms": summary(s.pause_play_ms for s in ok),
                "resume_play_after_end_ms": summary(s.resume_play_ms for s in ok),
                "stop_play_ms": summary(s.stop_play_ms for s in ok),
                "stop_play_after_end_ms": summary(s.stop_play_after_end_ms for s in ok),
                "failed": len(runs) - len(ok),
            }
        row["mic_late_p95_ms"] = summary(s.mic_late_p95_ms for s in mine)["max"]
        row["error_frames"] = _count(e.get("code") for s in mine for e in s.errors)
        out[name] = row
    return out


def _ms_pair(s: dict | None) -> str:
    if not s or s.get("median") is None:
        return "–"
    return f"{s['median']:.0f} / {s['p95']:.0f}"


def _k_of_n(row: dict, key: str, names: tuple[str, ...] | None = None, *, pct: bool = False) -> str:
    part = row.get(key)
    if not part:
        return "–"
    if names is None:
        k, n = part["ended"] if "ended" in part else part.get("ended_turn", 0), part["n"]
    else:
        items = [part["by_item"].get(x, {"ended": 0, "n": 0}) for x in names]
        k, n = sum(i["ended"] for i in items), sum(i["n"] for i in items)
    return f"{k} of {n}" + (f" ({100 * k / n:.0f}%)" if pct and n else "")


def _pause_cell(part: dict | None) -> str:
    if not part:
        return "–"
    notices = ", ".join(f"{reason} {n}" for reason, n in part.get("notices", {}).items())
    return f"{part['paused']} / {part['resumed']} of {part['n']}" + (f" ({notices})" if notices else "")


def _speculation_cell(part: dict | None, dropped: bool = False) -> str:
    if not part or not part.get("speculation"):
        return "–"
    text = ", ".join(f"{kind} {n}" for kind, n in part["speculation"].items())
    saved = part.get("speculation_saved_ms", {}).get("median")
    text += f"; saved {saved:.0f} ms" if saved is not None else ""
    return text + (f"; dropped {part['speculations_dropped']}" if dropped else "")


def _reasons(part: dict | None) -> str:
    if not part:
        return "–"
    text = ", ".join(f"{reason} {n}" for reason, n in part.get("eot_reasons", {}).items())
    fallbacks = part.get("eot_fallbacks")
    if fallbacks:
        text += " (" + ", ".join(f"{reason} {n}" for reason, n in fallbacks.items()) + ")"
    return text or "–"


def markdown(result: dict, *, command: str = "", machine: dict | None = None, commit: str = "") -> str:
    summ = result["summary"]
    names = list(summ)
    head = "| figure | " + " | ".join(f"`{n}`" for n in names) + " | goal |"
    lines = [head, "|---|" + "---|" * len(names) + "---|"]

    def row(label: str, cell: Callable[[dict], str], goal: str = "") -> None:
        cells = [cell(summ[n]) if summ[n].get("available") else "not available" for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {goal} |")

    floor = provider_floor_ms(REALISTIC)
    for providers, goals in (("realistic", ("", f"<= floor + 250 = {floor + 250:.0f} ms")),
                             ("instant", ("<= 400 ms", "<= 650 ms"))):  # fmt: skip
        key = f"complete_{providers}"
        row(f"complete questions, {providers} providers: end of speech -> `vad` speech_end, median / p95 (ms)",
            lambda r, k=key: _ms_pair(r.get(k, {}).get("end_decided_ms")))  # fmt: skip
        row("same -> `user_msg`, median / p95 (ms)",
            lambda r, k=key: _ms_pair(r.get(k, {}).get("user_msg_ms")), goals[0])  # fmt: skip
        row("same -> first audio, median / p95 (ms)",
            lambda r, k=key: _ms_pair(r.get(k, {}).get("first_audio_ms")), goals[1])  # fmt: skip
        row("same: how the turns ended (n)", lambda r, k=key: _reasons(r.get(k)))
        row("same: speculation used (n), saved ms median", lambda r, k=key: _speculation_cell(r.get(k)))
    row("thinking pauses (600-900 ms) that ended the turn", lambda r: _k_of_n(r, "thinking", pct=True), "<= 10%")
    row("same: what ended the turn in the pause (n)", lambda r: _reasons(r.get("thinking", {}).get("in_pause")))
    row("same: how the whole utterances ended (n)", lambda r: _reasons(r.get("thinking")))
    row("same: speculation used (n), saved ms median; dropped", lambda r: _speculation_cell(r.get("thinking"), True))
    row("same, whole utterance: end of speech -> first audio, median / p95 (ms)",
        lambda r: _ms_pair(r.get("thinking", {}).get("whole_utterance_first_audio_ms")))  # fmt: skip
    backchannel_names = tuple(name for name, text, _ in BACKCHANNELS if text)
    row("backchannels (" + ", ".join(backchannel_names) + ") that ended the answer",
        lambda r: _k_of_n(r, "backchannel", backchannel_names), "0 of N")  # fmt: skip
    row("coughs that ended the answer", lambda r: _k_of_n(r, "backchannel", ("cough",)), "0 of N")
    row("backchannels and coughs: answer paused / resumed (notices)", lambda r: _pause_cell(r.get("backchannel")))
    row("real interruptions detected (`stop_play`)", lambda r: _k_of_n(r, "interruption"), "N of N")
    row("interruption: start of speech -> `pause_play` (audio held), median / p95 (ms)",
        lambda r: _ms_pair(r.get("interruption", {}).get("pause_play_ms")))  # fmt: skip
    row("interruption: start of speech -> `stop_play`, median / p95 (ms)",
        lambda r: _ms_pair(r.get("interruption", {}).get("stop_play_ms")))  # fmt: skip
    row("backchannels and coughs: start of sound -> `pause_play`, median / p95 (ms)",
        lambda r: _ms_pair(r.get("backchannel", {}).get("pause_play_ms")))  # fmt: skip
    row("backchannels and coughs: end of sound -> `resume_play`, median / p95 (ms)",
        lambda r: _ms_pair(r.get("backchannel", {}).get("resume_play_after_end_ms")))  # fmt: skip
    out = []
    if command:
        out.append(f"Command: `{command}`")
    if commit:
        out.append(f"Code measured: {commit}")
    if machine:
        out.append("Machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()))
    out.append("")
    out.extend(lines)
    for n in names:
        if not summ[n].get("available"):
            out.append(f"\n`{n}`: not available ({summ[n]['reason']}).")
    out.append(f"\n`pause_play` / `resume_play` frames seen in the run: {result['pause_play_frames_seen']}.")
    if "other_processes_cores" in result:
        out.append(f"Run: {result['duration_s']:.0f} s; this process (server and client) used "
                   f"{result['this_process_cores']} cores, other processes {result['other_processes_cores']} cores "
                   f"(load average {result['load_avg_1m']['before']} -> {result['load_avg_1m']['after']}); "
                   f"end-of-turn model {result['end_of_turn_model']['after']}.")  # fmt: skip
    return "\n".join(out) + "\n"


def code_version() -> str:
    """The commit measured, and whether the working tree differed from it (other work in progress)."""
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True, timeout=10).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True, timeout=10).stdout.split("\n")  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    changed = sorted(line[3:] for line in dirty if line.strip())
    return head + (f" plus uncommitted changes in {', '.join(changed)}" if changed else "")


def write(result: dict, out_dir: Path, *, command: str, machine: dict) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    commit = result.get("code") or code_version()
    result = {**result, "command": command, "machine": machine, "code": commit}
    (out_dir / "turn_taking.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    md = "# Turn taking\n\n" + markdown(result, command=command, machine=machine, commit=commit)
    (out_dir / "turn_taking.md").write_text(md, encoding="utf-8")
    return out_dir / "turn_taking.md"
