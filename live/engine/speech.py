"""The speech stage: the plugin's own `run_live_agent`.

Agent text streams in; sentences are cut as it streams, synthesized in
parallel (bounded) and delivered strictly in order. A sentence whose TTS
fails is still delivered as text, with a `TTS_FAILED` error beside it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from ..audio.resample import StreamResampler
from ..audio.wav import pcm16_duration_ms, pcm16_to_wav
from ..errors import ErrorCode
from .events import ErrorRaised, Event, SentenceAudio, SentenceStarted
from .heard import SpokenSentence
from .ports import AudioClip, Synthesizer
from .segmenter import Segmenter, UnspokenFilter, speakable
from .tasks import wait_ended

_DONE = object()


def _ignore(*_args: object) -> None:
    pass


@dataclass(frozen=True, slots=True)
class OutputFormat:
    audio_format: str = "wav"  # "wav": one WAV per sentence; "pcm16": chunks as they come
    sample_rate: int = 0  # 0 keeps the provider's rate


@dataclass(slots=True)
class _Sentence:
    seq: int
    text: str
    spoken: str
    chunks: asyncio.Queue = field(default_factory=asyncio.Queue)
    task: asyncio.Task | None = None


class SpeechStage:
    """Turns one turn's agent text into ordered sentence audio events."""

    def __init__(
        self,
        *,
        turn_id: str,
        synthesizer: Synthesizer | None,
        emit: Callable[[Event], None],
        output: OutputFormat,
        fast_first_clause: bool = True,
        parallelism: int = 3,
        sentence_timeout_s: float = 30.0,
        mark: Callable[[str], None] = lambda _name: None,
        on_voiced: Callable[[str], None] = lambda _text: None,
    ) -> None:
        self._turn_id = turn_id
        self._tts = synthesizer
        self._emit = emit
        self._output = output
        self._mark = mark
        self._on_voiced = on_voiced
        self._filter = UnspokenFilter()
        self._segmenter = Segmenter(fast_first_clause=fast_first_clause)
        self._limit = asyncio.Semaphore(parallelism)
        self._sentence_timeout = sentence_timeout_s
        self._pending: asyncio.Queue = asyncio.Queue()
        self._sentences: list[_Sentence] = []
        self.spoken: list[SpokenSentence] = []  # the sentences whose audio went out, in order
        self.audio_ms = 0  # audio sent so far
        self._stopped = False

    @property
    def produced_audio(self) -> bool:
        return self.audio_ms > 0

    def push(self, delta: str) -> None:
        """Feed agent text; complete sentences start synthesizing at once."""
        for text in self._segmenter.push(self._filter.push(delta)):
            self._add(text)

    def end_input(self) -> None:
        tail = self._filter.flush()
        for text in self._segmenter.push(tail) + self._segmenter.flush():
            self._add(text)
        self._pending.put_nowait(_DONE)

    async def deliver(self) -> None:
        """Emit sentences in order until the input has ended."""
        while (sentence := await self._pending.get()) is not _DONE:
            await self._deliver_one(sentence)

    def stop(self) -> None:
        """Barge-in, at once: cancel synthesis; nothing more goes out or counts as sent."""
        self._stopped = True
        for sentence in self._sentences:
            if sentence.task is not None:
                sentence.task.cancel()
        # The callbacks are the turn's bound methods and the turn holds this stage: let go of them, so
        # a finished turn (its utterance, its audio) is freed at once, not at the next full GC pass.
        self._emit = self._mark = self._on_voiced = _ignore

    async def aclose(self) -> None:
        """Stop, and wait (bounded) for the cancelled synthesis to end."""
        self.stop()
        await wait_ended(s.task for s in self._sentences)

    def _add(self, text: str) -> None:
        if not self._sentences:
            self._mark("first_sentence")
        sentence = _Sentence(seq=len(self._sentences), text=text, spoken=speakable(text))
        self._sentences.append(sentence)
        if self._tts is not None and sentence.spoken:
            sentence.task = asyncio.create_task(
                self._synthesize(sentence), name=f"live-tts-{self._turn_id}-{sentence.seq}"
            )
        else:
            sentence.chunks.put_nowait(_DONE)
        self._pending.put_nowait(sentence)

    async def _synthesize(self, sentence: _Sentence) -> None:
        assert self._tts is not None
        async with self._limit:
            try:
                if sentence.seq == 0:
                    self._mark("first_tts_start")
                async with asyncio.timeout(self._sentence_timeout):
                    async for clip in self._tts.stream(sentence.spoken):
                        if clip.pcm:
                            sentence.chunks.put_nowait(clip)
            except asyncio.CancelledError:
                raise
            except TimeoutError:
                sentence.chunks.put_nowait(TimeoutError(f"no audio within {self._sentence_timeout:.0f} s"))
            except Exception as exc:  # a provider failure must not end the turn
                sentence.chunks.put_nowait(exc)
            finally:
                sentence.chunks.put_nowait(_DONE)

    async def _deliver_one(self, sentence: _Sentence) -> None:
        self._emit(SentenceStarted(self._turn_id, sentence.seq, sentence.text))
        start_ms = self.audio_ms
        resampler: StreamResampler | None = None
        pieces: list[bytes] = []
        rate = 0
        while (item := await sentence.chunks.get()) is not _DONE:
            if isinstance(item, Exception):
                self._emit(
                    ErrorRaised(ErrorCode.TTS_FAILED, f"speech synthesis failed: {item}", self._turn_id)
                )
                continue
            clip: AudioClip = item
            target = self._output.sample_rate or clip.sample_rate
            if resampler is None or rate != clip.sample_rate:
                resampler, rate = StreamResampler(clip.sample_rate, target), clip.sample_rate
            pcm = resampler.process(clip.pcm)
            if self._output.audio_format == "pcm16":
                self._send_audio(sentence, pcm, target, final=False)
            else:
                pieces.append(pcm)
        if resampler is not None:
            tail = resampler.flush()
            target = self._output.sample_rate or rate
            if self._output.audio_format == "pcm16":
                self._send_audio(sentence, tail, target, final=True)
            else:
                self._send_audio(sentence, b"".join(pieces) + tail, target, final=True)
            self._on_voiced(sentence.spoken)
        if not self._stopped:
            self.spoken.append(SpokenSentence(sentence.text, sentence.spoken, start_ms, self.audio_ms - start_ms))

    def _send_audio(self, sentence: _Sentence, pcm: bytes, rate: int, *, final: bool) -> None:
        if self._stopped or (not pcm and not final):
            return
        duration = pcm16_duration_ms(pcm, rate)
        if self.audio_ms == 0 and duration > 0:
            self._mark("first_audio")
        self.audio_ms += duration
        wav = self._output.audio_format == "wav"
        self._emit(
            SentenceAudio(
                turn_id=self._turn_id,
                seq=sentence.seq,
                audio=pcm16_to_wav(pcm, rate) if wav else pcm,
                audio_format=self._output.audio_format,
                sample_rate=rate,
                duration_ms=duration,
                text=sentence.text,
                final=final,
            )
        )
