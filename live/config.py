"""Plugin settings: one typed, validated view of `_conf_schema.json`.

The host hands the plugin a dict; everything else reads `LiveSettings`, so a
bad value in the config file is clamped here once instead of everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

BusyPolicy = Literal["interrupt", "reject"]
AudioFormat = Literal["wav", "pcm16"]
EndOfTurnMode = Literal["model", "silence"]


def _num(raw: Mapping[str, Any], key: str, default: float, lo: float, hi: float) -> float:
    try:
        value = float(raw.get(key, default))
    except (TypeError, ValueError):
        return default
    return min(max(value, lo), hi)


def _int(raw: Mapping[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    return int(_num(raw, key, default, lo, hi))


def _choice(raw: Mapping[str, Any], key: str, options: tuple[str, ...], default: str) -> str:
    value = str(raw.get(key, default) or default).strip().lower()
    return value if value in options else default


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-connection safety limits; exceeding one earns an error code, not a disconnect."""

    max_frame_bytes: int = 4 * 1024 * 1024
    max_utterance_ms: int = 60_000
    max_text_chars: int = 4000
    max_frames_per_second: int = 200
    max_sessions_per_user: int = 8
    max_rooms_per_user: int = 4


@dataclass(frozen=True, slots=True)
class QueuePolicy:
    """A live room's viewer queue (live/rooms/queue.py applies it)."""

    capacity: int = 30
    max_age_s: float = 60.0
    viewer_interval_s: float = 3.0
    merge_max: int = 5
    max_text_chars: int = 200
    greet_entries: bool = False
    thank_free_gifts: bool = False


@dataclass(frozen=True, slots=True)
class BilibiliSettings:
    """The Bilibili live chat feeding a room; off while `room_id` is 0."""

    room_id: int = 0
    cookie: str = field(default="", repr=False)  # optional login cookie: unmasked viewer names
    live_room: str = "stream"  # the Live Mode room that answers it
    room_owner: str = ""  # whose room; empty = the dashboard's admin user
    api_base: str = ""  # empty = Bilibili itself (tests point it at a fake server)


Backend = Literal["cascade", "realtime"]


@dataclass(frozen=True, slots=True)
class RealtimeBackendSettings:
    """The realtime backend's provider (an OpenAI-Realtime-protocol model); unused while `url` is empty."""

    url: str = ""  # ws:// or wss://
    api_key: str = field(default="", repr=False)
    model: str = ""
    voice: str = ""
    api: Literal["ga", "beta"] = "ga"  # event shapes: OpenAI today, or the beta ones Qwen-Omni/GLM/local servers speak
    input_rate: int = 24000  # the microphone rate the provider takes (OpenAI 24000, Qwen-Omni 16000)
    transcription_model: str = "gpt-4o-mini-transcribe"  # the model's transcription of the user ("" = none)
    fallback: bool = True  # a turn the provider cannot answer is answered by the cascade
    max_session_minutes: float = 55.0  # the provider's session limit, less a margin (OpenAI ends them at 60)
    # who ends a spoken turn on server-VAD connections: our VAD ("ours"), or the model's own detection
    turn_detection: Literal["ours", "server_vad", "semantic_vad"] = "ours"

    @property
    def configured(self) -> bool:
        return self.url.startswith(("ws://", "wss://"))


@dataclass(frozen=True, slots=True)
class LiveSettings:
    stt_provider_id: str = ""
    tts_provider_id: str = ""
    vad_silence_ms: int = 500  # the silence rule; with end_of_turn=model, its fallback
    end_of_turn: EndOfTurnMode = "model"  # server VAD: ask the end-of-turn model at a short pause
    end_of_turn_pause_ms: int = 200  # the pause after which the model is asked (< vad_silence_ms)
    end_of_turn_max_silence_ms: int = 2500  # the long limit when the model says "not done" (>= vad_silence_ms)
    end_of_turn_unsure_ms: int = 1000  # an unsure "done" ends the turn after this much silence (<= the long limit)
    end_of_turn_speculation: bool = True  # model mode: transcribe at the short pause, start the agent on "done", held
    vad_threshold: float = 0.5
    vad_min_speech_ms: int = 250
    vad_preroll_ms: int = 300
    noise_suppression: bool = False  # server VAD: RNNoise cleans the microphone before VAD and STT
    barge_in_enabled: bool = True
    barge_in_min_speech_ms: int = 300
    # pause_play clients: speech pauses the answer; it cuts when this long (voiced ms) or, at its end,
    # with this many words (a CJK character is one) that are not a backchannel
    barge_in_meant_ms: int = 1200
    barge_in_min_words: int = 1
    first_clause_fast_path: bool = True
    output_audio_format: AudioFormat = "wav"
    output_sample_rate: int = 0  # 0 = the TTS provider's own rate
    busy_policy: BusyPolicy = "interrupt"
    open_api_enabled: bool = True
    webchat_button: bool = True  # the Live Mode button in the dashboard's WebChat
    echo_guard: bool = True
    tts_parallelism: int = 3
    stt_timeout_s: float = 30.0
    tts_timeout_s: float = 30.0  # per sentence
    agent_idle_timeout_s: float = 120.0  # between two outputs of the agent
    limits: Limits = field(default_factory=Limits)
    room_queue: QueuePolicy = field(default_factory=QueuePolicy)
    room_linger_s: float = 120.0
    bilibili: BilibiliSettings = field(default_factory=BilibiliSettings)
    backend: Backend = "cascade"  # a connection may pick the other with ?backend=
    realtime: RealtimeBackendSettings = field(default_factory=RealtimeBackendSettings)

    @property
    def vad_end_silence_ms(self) -> int:
        """The endpointer's own silence limit: the long limit when the model decides earlier."""
        return self.end_of_turn_max_silence_ms if self.end_of_turn == "model" else self.vad_silence_ms

    @property
    def vad_pause_marks_ms(self) -> tuple[int, ...]:
        """Silences at which the endpointer reports a pause: ask the model, the fallback, an unsure "done"."""
        if self.end_of_turn != "model":
            return ()
        return tuple(sorted({self.end_of_turn_pause_ms, self.vad_silence_ms, self.end_of_turn_unsure_ms}))

    @classmethod
    def from_config(cls, raw: Mapping[str, Any] | None) -> LiveSettings:
        raw = raw or {}
        silence = _int(raw, "vad_silence_ms", 500, 150, 5000)
        # kept in order: ask-after < the silence rule (the fallback) <= the long limit; ask-after < unsure <= long
        pause = min(_int(raw, "end_of_turn_pause_ms", 200, 100, 400), silence - 50)
        longest = max(_int(raw, "end_of_turn_max_silence_ms", 2500, 500, 10000), silence)
        return cls(
            stt_provider_id=str(raw.get("stt_provider_id") or "").strip(),
            tts_provider_id=str(raw.get("tts_provider_id") or "").strip(),
            vad_silence_ms=silence,
            end_of_turn=_choice(raw, "end_of_turn", ("model", "silence"), "model"),  # type: ignore[arg-type]
            end_of_turn_pause_ms=pause,
            end_of_turn_max_silence_ms=longest,
            end_of_turn_unsure_ms=min(max(_int(raw, "end_of_turn_unsure_ms", 1000, 300, 10000), pause + 50), longest),
            end_of_turn_speculation=bool(raw.get("end_of_turn_speculation", True)),
            vad_threshold=_num(raw, "vad_threshold", 0.5, 0.05, 0.95),
            vad_min_speech_ms=_int(raw, "vad_min_speech_ms", 250, 50, 5000),
            vad_preroll_ms=_int(raw, "vad_preroll_ms", 300, 0, 2000),
            noise_suppression=bool(raw.get("noise_suppression", False)),
            barge_in_enabled=bool(raw.get("barge_in_enabled", True)),
            barge_in_min_speech_ms=_int(raw, "barge_in_min_speech_ms", 300, 0, 5000),
            barge_in_meant_ms=_int(raw, "barge_in_meant_ms", 1200, 300, 10000),
            barge_in_min_words=_int(raw, "barge_in_min_words", 1, 1, 20),
            first_clause_fast_path=bool(raw.get("first_clause_fast_path", True)),
            output_audio_format=_choice(raw, "output_audio_format", ("wav", "pcm16"), "wav"),  # type: ignore[arg-type]
            output_sample_rate=_int(raw, "output_sample_rate", 0, 0, 48000),
            busy_policy=_choice(raw, "busy_policy", ("interrupt", "reject"), "interrupt"),  # type: ignore[arg-type]
            open_api_enabled=bool(raw.get("open_api_enabled", True)),
            webchat_button=bool(raw.get("webchat_button", True)),
            echo_guard=bool(raw.get("echo_guard", True)),
            tts_parallelism=_int(raw, "tts_parallelism", 3, 1, 8),
            stt_timeout_s=_num(raw, "stt_timeout_seconds", 30, 1, 600),
            tts_timeout_s=_num(raw, "tts_timeout_seconds", 30, 1, 600),
            agent_idle_timeout_s=_num(raw, "agent_idle_timeout_seconds", 120, 5, 3600),
            limits=Limits(
                max_frame_bytes=_int(raw, "max_frame_kib", 4096, 16, 65536) * 1024,
                max_utterance_ms=_int(raw, "max_utterance_seconds", 60, 1, 600) * 1000,
                max_text_chars=_int(raw, "max_text_chars", 4000, 1, 100_000),
                max_frames_per_second=_int(raw, "max_frames_per_second", 200, 5, 10_000),
                max_sessions_per_user=_int(raw, "max_sessions_per_user", 8, 1, 1000),
                max_rooms_per_user=_int(raw, "max_rooms_per_user", 4, 1, 100),
            ),
            room_queue=QueuePolicy(
                capacity=_int(raw, "room_queue_size", 30, 1, 1000),
                max_age_s=_num(raw, "room_max_age_seconds", 60, 5, 3600),
                viewer_interval_s=_num(raw, "room_viewer_interval_seconds", 3, 0, 600),
                merge_max=_int(raw, "room_merge_max", 5, 1, 20),
                max_text_chars=_int(raw, "room_max_viewer_chars", 200, 10, 2000),
                greet_entries=bool(raw.get("room_greet_entries", False)),
                thank_free_gifts=bool(raw.get("room_thank_free_gifts", False)),
            ),
            room_linger_s=_num(raw, "room_linger_seconds", 120, 0, 86400),
            bilibili=BilibiliSettings(
                room_id=_int(raw, "bilibili_room_id", 0, 0, 10**12),
                cookie=str(raw.get("bilibili_cookie") or "").strip(),
                live_room=str(raw.get("bilibili_live_room") or "stream").strip() or "stream",
                room_owner=str(raw.get("bilibili_room_owner") or "").strip(),
                api_base=str(raw.get("bilibili_api_base") or "").strip(),
            ),
            backend=_choice(raw, "backend", ("cascade", "realtime"), "cascade"),  # type: ignore[arg-type]
            realtime=RealtimeBackendSettings(
                url=str(raw.get("realtime_url") or "").strip(),
                api_key=str(raw.get("realtime_api_key") or "").strip(),
                model=str(raw.get("realtime_model") or "").strip(),
                voice=str(raw.get("realtime_voice") or "").strip(),
                api=_choice(raw, "realtime_api", ("ga", "beta"), "ga"),  # type: ignore[arg-type]
                input_rate=_int(raw, "realtime_input_rate", 24000, 8000, 48000),
                transcription_model=str(
                    raw.get("realtime_transcription_model", "gpt-4o-mini-transcribe") or ""
                ).strip(),
                fallback=bool(raw.get("realtime_fallback", True)),
                max_session_minutes=_num(raw, "realtime_max_session_minutes", 55, 1, 24 * 60),
                turn_detection=_choice(  # type: ignore[arg-type]
                    raw, "realtime_turn_detection", ("ours", "server_vad", "semantic_vad"), "ours"
                ),
            ),
        )
