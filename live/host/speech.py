"""The engine's `Speech`, on AstrBot's STT/TTS providers.

Provider choice: the plugin's configured provider, else the session's
(`get_using_*_provider_async(umo)`), never "the first provider". Host
providers work on files; the temp files live only for one call.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from astrbot.core.utils.astrbot_path import get_astrbot_temp_path

from ..audio.wav import wav_to_pcm16
from ..config import LiveSettings
from ..engine.ports import AudioClip, Conversation
from ..log import logger
from .agent import umo_of

_DECODE_RATE = 24000


def _temp_path(suffix: str) -> Path:
    folder = Path(get_astrbot_temp_path())
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"live_{uuid.uuid4().hex}{suffix}"


async def decode_audio(data: bytes) -> AudioClip:
    """Any provider output as PCM16 mono: WAV directly, anything else through ffmpeg."""
    try:
        pcm, rate = wav_to_pcm16(data)
        return AudioClip(pcm, rate)
    except ValueError:
        pass
    proc = await asyncio.create_subprocess_exec(
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-i", "pipe:0",
        "-f", "s16le", "-ac", "1", "-ar", str(_DECODE_RATE), "pipe:1",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await proc.communicate(data)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"cannot decode the TTS provider's audio: {err.decode(errors='replace')[:200]}")
    return AudioClip(out, _DECODE_RATE)


class ProviderTranscriber:
    def __init__(self, provider: Any) -> None:
        self._provider = provider

    async def transcribe(self, wav: bytes) -> str:
        direct = getattr(self._provider, "transcribe_wav", None)
        if direct is not None:
            return await direct(wav)
        path = _temp_path(".wav")
        try:
            path.write_bytes(wav)  # tens of KB into the page cache: cheaper than a thread hop
            return (await self._provider.get_text(str(path))) or ""
        finally:
            path.unlink(missing_ok=True)


class ProviderSynthesizer:
    def __init__(self, provider: Any) -> None:
        self._provider = provider

    async def stream(self, text: str) -> AsyncIterator[AudioClip]:
        provider = self._provider
        if hasattr(provider, "synthesize_stream"):
            async for pcm in provider.synthesize_stream(text):
                yield AudioClip(pcm, provider.sample_rate)
        elif provider.support_stream():
            async for clip in self._host_stream(text):
                yield clip
        else:
            yield await self._whole(text)

    async def _whole(self, text: str) -> AudioClip:
        path = await self._provider.get_audio(text)
        try:
            data = await asyncio.to_thread(Path(path).read_bytes)
        finally:
            await asyncio.to_thread(_unlink, path)
        return await decode_audio(data)

    async def _host_stream(self, text: str) -> AsyncIterator[AudioClip]:
        """A provider with `get_audio_stream(text_queue, audio_queue)`."""
        text_queue: asyncio.Queue = asyncio.Queue()
        audio_queue: asyncio.Queue = asyncio.Queue()
        text_queue.put_nowait(text)
        text_queue.put_nowait(None)
        producer = asyncio.create_task(self._provider.get_audio_stream(text_queue, audio_queue))
        try:
            while True:
                getter = asyncio.create_task(audio_queue.get())
                await asyncio.wait({getter, producer}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    if audio_queue.empty():
                        producer.result()  # re-raise a provider failure
                        return
                    continue
                item = getter.result()
                if item is None:
                    return
                data = item[1] if isinstance(item, tuple) else item
                yield await decode_audio(data)
        finally:
            if not producer.done():
                producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class HostSpeech:
    def __init__(self, context: Any, settings: Callable[[], LiveSettings]) -> None:
        self._context = context
        self._settings = settings

    def _configured(self, provider_id: str, kind: str) -> Any:
        provider = self._context.get_provider_by_id(provider_id)
        if provider is None:
            logger.warning("Live Mode's %s provider %r does not exist; using the session's", kind, provider_id)
        return provider

    async def transcriber(self, conversation: Conversation) -> ProviderTranscriber | None:
        provider_id = self._settings().stt_provider_id
        provider = self._configured(provider_id, "STT") if provider_id else None
        if provider is None:
            provider = await self._context.get_using_stt_provider_async(umo_of(conversation))
        return ProviderTranscriber(provider) if provider is not None else None

    async def synthesizer(self, conversation: Conversation) -> ProviderSynthesizer | None:
        provider_id = self._settings().tts_provider_id
        provider = self._configured(provider_id, "TTS") if provider_id else None
        if provider is None:
            provider = await self._context.get_using_tts_provider_async(umo_of(conversation))
        return ProviderSynthesizer(provider) if provider is not None else None

    def describe(self) -> dict[str, str]:
        settings = self._settings()
        return {
            "stt_provider": settings.stt_provider_id or "(session's)",
            "tts_provider": settings.tts_provider_id or "(session's)",
        }
