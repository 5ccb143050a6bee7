"""Offline speech-to-text with faster-whisper on the bundled tiny.en model.

Synchronous by design: callers run `transcribe_pcm16` in a worker thread.

Latency: Whisper's encoder always reads a 30 s window, which on two cores is
~250 ms of the ~350-550 ms a 3 s utterance costs through `transcribe()`. Live
utterances are short, so the fast path encodes only the utterance rounded up
to at least 10 s (1000 mel frames): about 3x faster with the same words on our
test set. Below 10 s the model loops ("Stop. Stop. Stop..."). Anything the fast
path is unsure about (a loop, a truncated decode, an unknown language, or an
utterance near 30 s) goes through the standard `transcribe()` instead.

Example:
    >>> stt = WhisperTranscriber()
    >>> stt.transcribe_pcm16(pcm_16k, 16000)
    'What is the weather like today?'
"""

from __future__ import annotations

import math
import threading
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..audio.resample import resample_pcm16
from .models import resolve_whisper_model

WHISPER_SAMPLE_RATE = 16000
MIN_CONTEXT_FRAMES = 1000  # 10 s: shorter encoder windows make tiny.en loop on one-word utterances
FULL_CONTEXT_FRAMES = 3000
_CHINESE_PROMPT = "以下是普通话的句子。"
_MAX_TOKENS = 448


class WhisperTranscriber:
    """faster-whisper model, loaded once on first use and shared by all threads."""

    def __init__(
        self,
        model: str = "tiny.en",
        cpu_threads: int = 2,
        language: str | None = None,
        *,
        data_dir: str | Path | None = None,
        short_context: bool = True,
    ) -> None:
        self.model = model
        self.cpu_threads = max(1, int(cpu_threads))
        # English-only checkpoints must not run language detection (it costs a pass).
        self.language = "en" if model.endswith(".en") else (language or None)
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.short_context = short_context
        self._whisper: Any = None
        self._fast: tuple[Any, list[int], list[int]] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = "loaded" if self._whisper is not None else "not loaded"
        return f"WhisperTranscriber({self.model!r}, language={self.language!r}, {state})"

    @property
    def loaded(self) -> bool:
        return self._whisper is not None

    def load(self) -> None:
        """Verify and load the model; safe to call from several threads, loads once."""
        if self._whisper is not None:
            return
        with self._lock:
            if self._whisper is not None:
                return
            path = resolve_whisper_model(self.model, self.data_dir)
            from faster_whisper import WhisperModel

            whisper = WhisperModel(
                str(path), device="cpu", compute_type="int8", cpu_threads=self.cpu_threads, local_files_only=True
            )
            self._fast = self._prepare_fast_path(whisper)
            self._whisper = whisper

    def _prepare_fast_path(self, whisper: Any) -> tuple[Any, list[int], list[int]] | None:
        """Tokenizer, prompt and suppressed tokens for direct encode/generate calls."""
        if not self.short_context or self.language is None:
            return None
        try:
            from faster_whisper.tokenizer import Tokenizer
            from faster_whisper.transcribe import get_suppressed_tokens

            tokenizer = Tokenizer(whisper.hf_tokenizer, whisper.model.is_multilingual, "transcribe", self.language)
            previous = tokenizer.encode(" " + _CHINESE_PROMPT) if self.language.startswith("zh") else []
            prompt = whisper.get_prompt(tokenizer, previous, without_timestamps=True)
            return tokenizer, prompt, list(get_suppressed_tokens(tokenizer, [-1]))
        except (AttributeError, ImportError, TypeError, ValueError):
            return None  # faster-whisper internals moved: the standard path still works

    def transcribe_pcm16(self, pcm: bytes, sample_rate: int) -> str:
        """Transcribe mono PCM16; returns the stripped text ('' for silence or noise)."""
        self.load()
        if sample_rate != WHISPER_SAMPLE_RATE:
            pcm = resample_pcm16(pcm, sample_rate, WHISPER_SAMPLE_RATE)
        usable = len(pcm) - len(pcm) % 2
        if usable == 0:
            return ""
        audio = np.frombuffer(pcm[:usable], dtype="<i2").astype(np.float32) / 32768.0
        whisper, fast = self._whisper, self._fast  # close() from another thread must not pull them away
        if whisper is None:
            raise RuntimeError("the whisper model was closed during transcription")
        if fast is not None:
            text = self._transcribe_short(whisper, fast, audio)
            if text is not None:
                return text
        return self._transcribe_full(whisper, audio)

    def _transcribe_short(self, whisper: Any, fast: tuple[Any, list[int], list[int]], audio: np.ndarray) -> str | None:
        """Encode only the utterance; None means "not sure, use the standard path"."""
        import ctranslate2
        from faster_whisper.audio import pad_or_trim

        tokenizer, prompt, suppress = fast
        features = whisper.feature_extractor(audio)
        context = max(MIN_CONTEXT_FRAMES, math.ceil((features.shape[-1] + 100) / 100) * 100)
        if context >= FULL_CONTEXT_FRAMES:
            return None
        window = ctranslate2.StorageView.from_array(np.ascontiguousarray(pad_or_trim(features, context)[None]))
        encoded = whisper.model.encode(window, to_cpu=False)
        # About 3 words a second at most: a longer decode is a loop, not speech.
        budget = min(_MAX_TOKENS - len(prompt), 16 + int(10 * audio.size / WHISPER_SAMPLE_RATE))
        result = whisper.model.generate(
            encoded,
            [prompt],
            beam_size=1,
            max_length=len(prompt) + budget,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=suppress,
        )[0]
        tokens = result.sequences_ids[0]
        text = tokenizer.decode(tokens).strip()
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
        if result.no_speech_prob > 0.6 and avg_logprob < -1.0:
            return ""
        if not any(ch.isalnum() for ch in text):
            return ""  # ". . . ." is what noise decodes to
        if len(tokens) >= budget - 1 or len(text) / len(zlib.compress(text.encode())) > 2.4:
            return None
        return text

    def _transcribe_full(self, whisper: Any, audio: np.ndarray) -> str:
        zh = (self.language or "").startswith("zh")
        segments, _info = whisper.transcribe(
            audio,
            language=self.language,
            beam_size=1,
            temperature=(0.0, 0.2, 0.4),  # re-decode only when greedy output loops
            condition_on_previous_text=False,
            without_timestamps=True,
            vad_filter=False,
            initial_prompt=_CHINESE_PROMPT if zh else None,
        )
        text = "".join(segment.text for segment in segments).strip()
        return text if any(ch.isalnum() for ch in text) else ""

    def close(self) -> None:
        """Drop the model so CTranslate2 frees its memory; a later call reloads it."""
        with self._lock:
            self._whisper = None
            self._fast = None
