"""The embedded offline STT and TTS, registered as ordinary AstrBot providers.

Registering them as host providers (types ``live_local_stt`` and
``live_local_tts``) means they appear in the dashboard's provider list, the
host's own voice features can use them, and Live Mode picks them like any other
provider. Beyond the host contract each adapter has a few extra async methods
the engine calls directly to skip temp files (`transcribe_wav`, `synthesize`,
`synthesize_stream`).

Inference runs on a small per-provider thread pool, never on the event loop and
never on the loop's default executor, so a long transcription cannot starve
the host's other `to_thread` users.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from astrbot.core.provider.entities import ProviderType
from astrbot.core.provider.provider import STTProvider, TTSProvider
from astrbot.core.provider.register import provider_cls_map, register_provider_adapter
from astrbot.core.utils.astrbot_path import get_astrbot_plugin_data_path, get_astrbot_temp_path
from astrbot.core.utils.datetime_utils import generate_timestamp_id
from astrbot.core.utils.media_utils import MediaResolver

from ..audio.resample import resample_pcm16
from ..audio.wav import pcm16_to_wav, wav_to_pcm16
from ..log import logger
from ..providers.espeak_tts import EspeakSynthesizer, mostly_cjk
from ..providers.models import require_offline_packages
from ..providers.piper_tts import PiperSynthesizer
from ..providers.whisper_stt import WhisperTranscriber

STT_TYPE = "live_local_stt"
TTS_TYPE = "live_local_tts"
MODELS_SUBDIR = Path("astrbot_plugin_live") / "models"
TTS_ENGINES = ("piper", "espeak")

STT_DEFAULT_CONFIG: dict[str, Any] = {
    "id": "live_local_stt",
    "type": STT_TYPE,
    "provider": "live_mode",
    "provider_type": "speech_to_text",
    "enable": False,
    "model": "tiny.en",
    "language": "",
    "cpu_threads": 2,
    "preload": True,
}
TTS_DEFAULT_CONFIG: dict[str, Any] = {
    "id": "live_local_tts",
    "type": TTS_TYPE,
    "provider": "live_mode",
    "provider_type": "text_to_speech",
    "enable": False,
    "engine": "piper",
    "espeak_voice": "en-us",
    "cjk_fallback": True,
    "cpu_threads": 1,
    "preload": True,
}

T = TypeVar("T")
_END = object()


def _int_option(config: dict, key: str, default: int) -> int:
    try:
        return max(1, int(config.get(key, default)))
    except (TypeError, ValueError):
        return default


class _Worker:
    """A private thread pool: blocking model calls go here, one per provider instance."""

    def __init__(self, name: str, workers: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def submit(self, fn: Callable[[], None]) -> None:
        self._pool.submit(fn)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class LiveLocalSTT(STTProvider):
    """faster-whisper tiny.en (or the optional multilingual base) running in-process."""

    def __init__(self, provider_config: dict, provider_settings: dict) -> None:
        super().__init__(provider_config, provider_settings)
        model = str(provider_config.get("model") or "tiny.en").strip()
        self.set_model(model)
        self._preload = bool(provider_config.get("preload", True))
        self._stt = WhisperTranscriber(
            model=model,
            cpu_threads=_int_option(provider_config, "cpu_threads", 2),
            language=str(provider_config.get("language") or "").strip() or None,
            data_dir=Path(get_astrbot_plugin_data_path()) / MODELS_SUBDIR,
        )
        # Whisper already uses every core it is given: concurrent calls would only contend.
        self._worker = _Worker("live-stt", 1)

    async def initialize(self) -> None:
        """Fail early with the install command, and load the model off the loop if preloading."""
        require_offline_packages(stt=True, tts=False)
        if self._preload:
            await self._worker.run(self._stt.load)
            logger.info("offline STT ready: %r", self._stt)

    async def get_text(self, audio_url: str) -> str:
        """Transcribe a local WAV path; other formats and URLs go through the host's resolver."""
        try:
            local = Path(audio_url) if len(audio_url) < 4096 and Path(audio_url).is_file() else None
        except (OSError, ValueError):  # base64 payloads and URLs are not paths
            local = None
        if local is not None:
            data = await asyncio.to_thread(local.read_bytes)
            if data[:4] == b"RIFF":
                return await self.transcribe_wav(data)
        async with MediaResolver(audio_url, media_type="audio", default_suffix=".wav").as_path(
            target_format="wav"
        ) as resolved:
            data = await asyncio.to_thread(resolved.read_bytes)
        return await self.transcribe_wav(data)

    async def transcribe_wav(self, wav: bytes) -> str:
        """Transcribe an in-memory WAV (any PCM/float encoding, any rate)."""
        pcm, rate = wav_to_pcm16(wav)
        return await self.transcribe_pcm16(pcm, rate)

    async def transcribe_pcm16(self, pcm: bytes, sample_rate: int) -> str:
        """Transcribe mono PCM16 as the VAD hands it over, without a WAV round trip."""
        require_offline_packages(stt=True, tts=False)
        return await self._worker.run(self._stt.transcribe_pcm16, pcm, sample_rate)

    async def test(self) -> None:
        """Dashboard health check: load the model and run it once (the host's sample WAV is not shipped)."""
        await self.transcribe_pcm16(b"\x00\x00" * 8000, 16000)

    async def terminate(self) -> None:
        """Free the model and stop the worker thread."""
        self._stt.close()
        self._worker.shutdown()


class LiveLocalTTS(TTSProvider):
    """piper (en_US-joe-medium) or espeak-ng, with espeak's pinyin voice for Chinese text."""

    def __init__(self, provider_config: dict, provider_settings: dict) -> None:
        super().__init__(provider_config, provider_settings)
        engine = str(provider_config.get("engine") or "piper").strip().lower()
        if engine not in TTS_ENGINES:
            raise ValueError(f"live_local_tts: unknown engine {engine!r}; expected one of {TTS_ENGINES}")
        self.engine = engine
        self._preload = bool(provider_config.get("preload", True))
        self._cjk_fallback = bool(provider_config.get("cjk_fallback", True))
        self._espeak = EspeakSynthesizer(voice=str(provider_config.get("espeak_voice") or "en-us"))
        self._piper = (
            PiperSynthesizer(cpu_threads=_int_option(provider_config, "cpu_threads", 1))
            if engine == "piper"
            else None
        )
        self.set_model("en_US-joe-medium" if engine == "piper" else f"espeak-ng/{self._espeak.voice}")
        self._worker = _Worker("live-tts", 2)

    def support_stream(self) -> bool:
        return True

    @property
    def sample_rate(self) -> int:
        """Rate of every PCM chunk this provider returns."""
        return self._piper.sample_rate if self._piper is not None else self._espeak.sample_rate

    async def initialize(self) -> None:
        """Fail early with an install hint, and load piper off the loop if preloading."""
        if self._piper is None:
            self._espeak.executable()
            return
        require_offline_packages(stt=False, tts=True)
        if self._preload:
            await self._worker.run(self._piper.load)
            logger.info("offline TTS ready: %r", self._piper)

    def _uses_espeak(self, text: str) -> bool:
        return self._piper is None or (self._cjk_fallback and mostly_cjk(text))

    async def _espeak_pcm(self, text: str) -> bytes:
        pcm, rate = await self._espeak.synthesize(text)
        return pcm if rate == self.sample_rate else resample_pcm16(pcm, rate, self.sample_rate)

    async def synthesize(self, text: str) -> tuple[bytes, int]:
        """The whole text as (PCM16 mono, sample rate)."""
        if self._uses_espeak(text):
            return await self._espeak_pcm(text), self.sample_rate
        assert self._piper is not None
        require_offline_packages(stt=False, tts=True)
        return await self._worker.run(self._piper.synthesize, text), self.sample_rate

    async def synthesize_stream(self, text: str) -> AsyncIterator[bytes]:
        """PCM16 chunks at `sample_rate` as they are produced (piper: one per sentence).

        Stopping iteration early (barge-in) stops piper after its current sentence.
        """
        if self._uses_espeak(text):
            pcm = await self._espeak_pcm(text)
            if pcm:
                yield pcm
            return
        assert self._piper is not None
        require_offline_packages(stt=False, tts=True)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        stop = threading.Event()
        piper = self._piper

        def post(item: object) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop closed while we were synthesizing
                stop.set()

        def produce() -> None:
            try:
                for chunk in piper.synthesize_chunks(text):
                    if stop.is_set():
                        return
                    post(chunk)
                post(_END)
            except Exception as exc:  # handed to the consumer, raised there
                post(exc)

        self._worker.submit(produce)
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    return
                if isinstance(item, Exception):
                    raise item
                yield item  # type: ignore[misc]
        finally:
            stop.set()

    async def get_audio(self, text: str) -> str:
        """Host contract: synthesize into a WAV file in AstrBot's temp dir and return its path."""
        pcm, rate = await self.synthesize(text)
        path = Path(get_astrbot_temp_path()) / f"live_local_tts_{generate_timestamp_id()}.wav"

        def write() -> None:
            os.makedirs(path.parent, exist_ok=True)
            path.write_bytes(pcm16_to_wav(pcm, rate))

        await asyncio.to_thread(write)
        return str(path)

    async def get_audio_stream(
        self,
        text_queue: asyncio.Queue[str | None],
        audio_queue: asyncio.Queue[bytes | tuple[str, bytes] | None],
    ) -> None:
        """Host contract: one ``(sentence, wav_bytes)`` per sentence; the caller adds the final None."""
        while True:
            text = await text_queue.get()
            if text is None:
                return
            if not text.strip():
                continue
            try:
                pcm, rate = await self.synthesize(text)
            except Exception as exc:  # one bad sentence must not silence the rest of the reply
                logger.error("offline TTS failed for one sentence: %s", exc)
                continue
            if pcm:
                await audio_queue.put((text, pcm16_to_wav(pcm, rate)))

    async def terminate(self) -> None:
        """Free the voice model and stop the worker threads."""
        if self._piper is not None:
            self._piper.close()
        self._worker.shutdown()


def _register(type_name: str, cls: type, desc: str, kind: ProviderType, tmpl: dict, display: str) -> None:
    existing = provider_cls_map.get(type_name)
    if existing is None:
        register_provider_adapter(
            type_name, desc, provider_type=kind, default_config_tmpl=dict(tmpl), provider_display_name=display
        )(cls)
    elif getattr(existing.cls_type, "__qualname__", None) == cls.__qualname__:
        # A plugin reload re-imports this module: point the entry at the fresh class
        # so updated code is used for providers created from now on.
        existing.cls_type = cls


def register_offline_providers() -> None:
    """Register both adapter types once; a plugin reload refreshes the class in place."""
    _register(
        STT_TYPE,
        LiveLocalSTT,
        "Live Mode offline speech-to-text (faster-whisper tiny.en, runs locally)",
        ProviderType.SPEECH_TO_TEXT,
        STT_DEFAULT_CONFIG,
        "Live Mode local STT (Whisper)",
    )
    _register(
        TTS_TYPE,
        LiveLocalTTS,
        "Live Mode offline text-to-speech (piper en_US-joe or espeak-ng, runs locally)",
        ProviderType.TEXT_TO_SPEECH,
        TTS_DEFAULT_CONFIG,
        "Live Mode local TTS (Piper / eSpeak)",
    )
