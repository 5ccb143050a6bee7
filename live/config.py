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


@dataclass(frozen=True, slots=True)
class LiveSettings:
    stt_provider_id: str = ""
    tts_provider_id: str = ""
    vad_silence_ms: int = 500
    vad_threshold: float = 0.5
    vad_min_speech_ms: int = 250
    vad_preroll_ms: int = 300
    barge_in_enabled: bool = True
    barge_in_min_speech_ms: int = 300
    first_clause_fast_path: bool = True
    output_audio_format: AudioFormat = "wav"
    output_sample_rate: int = 0  # 0 = the TTS provider's own rate
    busy_policy: BusyPolicy = "interrupt"
    open_api_enabled: bool = True
    echo_guard: bool = True
    tts_parallelism: int = 3
    stt_timeout_s: float = 30.0
    tts_timeout_s: float = 30.0  # per sentence
    agent_idle_timeout_s: float = 120.0  # between two outputs of the agent
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def from_config(cls, raw: Mapping[str, Any] | None) -> LiveSettings:
        raw = raw or {}
        return cls(
            stt_provider_id=str(raw.get("stt_provider_id") or "").strip(),
            tts_provider_id=str(raw.get("tts_provider_id") or "").strip(),
            vad_silence_ms=_int(raw, "vad_silence_ms", 500, 150, 5000),
            vad_threshold=_num(raw, "vad_threshold", 0.5, 0.05, 0.95),
            vad_min_speech_ms=_int(raw, "vad_min_speech_ms", 250, 50, 5000),
            vad_preroll_ms=_int(raw, "vad_preroll_ms", 300, 0, 2000),
            barge_in_enabled=bool(raw.get("barge_in_enabled", True)),
            barge_in_min_speech_ms=_int(raw, "barge_in_min_speech_ms", 300, 0, 5000),
            first_clause_fast_path=bool(raw.get("first_clause_fast_path", True)),
            output_audio_format=_choice(raw, "output_audio_format", ("wav", "pcm16"), "wav"),  # type: ignore[arg-type]
            output_sample_rate=_int(raw, "output_sample_rate", 0, 0, 48000),
            busy_policy=_choice(raw, "busy_policy", ("interrupt", "reject"), "interrupt"),  # type: ignore[arg-type]
            open_api_enabled=bool(raw.get("open_api_enabled", True)),
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
            ),
        )
