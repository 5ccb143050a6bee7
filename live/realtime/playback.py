"""A realtime answer's playback: the model's audio out in the client's format, and what it said when.

The engine's `Playback` for the realtime backend. Audio deltas (PCM16 24 kHz) are
resampled to the client's negotiated rate and sent as they arrive (pcm16 chunks, or
WAVs of about `WAV_CHUNK_MS`). `spoken` maps the transcript to audio time, so a cut
keeps what the user heard (`live/engine/heard.py`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ..audio.resample import StreamResampler
from ..audio.wav import pcm16_to_wav
from ..engine.events import Event, SentenceAudio
from ..engine.heard import SpokenSentence
from ..engine.segmenter import speakable
from ..engine.speech import OutputFormat
from .events import MODEL_RATE, AudioDelta, TranscriptDelta

WAV_CHUNK_MS = 200  # wav clients get the audio as WAVs of about this length (the first at once)
SPEECH_MS_PER_CHAR = 65.0  # a voice's pace before any item ended: ~15 Latin characters a second
CJK_CHAR_WEIGHT = 3  # a Han or kana character takes about as long to say as three Latin ones
_SENTENCE = re.compile(r"[^.!?。！？…]*(?:[.!?。！？…]+|$)")


def _speech_chars(text: str) -> int:
    """How long `text` takes to say, in Latin-character units."""
    voiced = speakable(text)
    cjk = sum(1 for ch in voiced if "\u3040" <= ch <= "\u9fff")
    return len(voiced) - cjk + cjk * CJK_CHAR_WEIGHT


@dataclass
class _Item:
    """One audio item of the answer (a tool call's continuation is a second one)."""

    item_id: str
    seq: int
    resampler: StreamResampler
    text: str = ""  # its transcript so far
    unsent_text: str = ""  # transcript not yet attached to an audio event
    buffer: bytearray = field(default_factory=bytearray)  # wav clients: audio waiting for a chunk's worth
    start_ms: float | None = None  # where its audio starts in the turn's audio
    out_ms: float = 0.0  # its audio sent to the client
    model_ms: float = 0.0  # its audio received from the model
    ended: bool = False


class RealtimePlayback:
    """The engine's `Playback` for a realtime answer: model audio out as it arrives, and what it said when.

    `spoken` maps the transcript to audio time: each item's sentences share its audio in proportion
    to their voiced characters (a realtime model does not say which word falls where).
    """

    def __init__(
        self,
        *,
        turn_id: str,
        emit: Callable[[Event], None],
        output: OutputFormat,
        mark: Callable[[str], None],
        on_voiced: Callable[[str], None] = lambda _text: None,
    ) -> None:
        self._turn_id = turn_id
        self._emit = emit
        self._mark = mark
        self._on_voiced = on_voiced
        self._format = output.audio_format
        self._rate = output.sample_rate or MODEL_RATE
        self._items: dict[str, _Item] = {}
        self._samples = 0  # sent to the client, at self._rate
        self._stopped = False

    @property
    def audio_ms(self) -> int:
        return int(self._samples * 1000 / self._rate)

    @property
    def produced_audio(self) -> bool:
        return self._samples > 0

    def _item(self, item_id: str) -> _Item:
        item = self._items.get(item_id)
        if item is None:
            item = self._items[item_id] = _Item(item_id, len(self._items), StreamResampler(MODEL_RATE, self._rate))
        return item

    def text(self, delta: TranscriptDelta) -> None:
        item = self._item(delta.item_id)
        item.text += delta.text
        item.unsent_text += delta.text

    def audio(self, delta: AudioDelta) -> None:
        item = self._item(delta.item_id)
        for earlier in self._items.values():  # a new item's audio follows the whole of the one before
            if earlier is not item and not earlier.ended:
                self._end_item(earlier)
        item.model_ms += delta.duration_ms
        pcm = item.resampler.process(delta.pcm)
        if self._format != "wav":
            self._send(item, pcm, final=False)
            return
        item.buffer += pcm
        if not self.produced_audio or len(item.buffer) * 1000 >= WAV_CHUNK_MS * 2 * self._rate:
            self._send(item, bytes(item.buffer), final=False)
            item.buffer.clear()

    def end(self) -> None:
        """The answer is complete: every item's last audio goes out, marked final."""
        for item in self._items.values():
            if not item.ended:
                self._end_item(item)

    def _end_item(self, item: _Item) -> None:
        item.ended = True
        tail = bytes(item.buffer) + item.resampler.flush()
        item.buffer.clear()
        if item.start_ms is not None or tail:
            self._send(item, tail, final=True)
            self._on_voiced(speakable(item.text))

    def _send(self, item: _Item, pcm: bytes, *, final: bool) -> None:
        if self._stopped or (not pcm and not final):
            return
        samples = len(pcm) // 2
        if samples and not self._samples:
            self._mark("first_audio")
        if item.start_ms is None:
            item.start_ms = self._samples * 1000 / self._rate
        self._samples += samples
        duration = samples * 1000 / self._rate
        item.out_ms += duration
        text, item.unsent_text = item.unsent_text, ""
        self._emit(
            SentenceAudio(
                turn_id=self._turn_id,
                seq=item.seq,
                audio=pcm16_to_wav(pcm, self._rate) if self._format == "wav" else pcm,
                audio_format=self._format,
                sample_rate=self._rate,
                duration_ms=round(duration),
                text=text,
                final=final,
            )
        )

    @property
    def spoken(self) -> list[SpokenSentence]:
        """An ended item's sentences share its audio; an item still coming spans what its whole transcript
        will take to say (the transcript runs ahead of the audio), at the pace of the ended items, else
        `SPEECH_MS_PER_CHAR`. So a cut never counts words whose audio had not been sent as heard."""
        ended = [item for item in self._items.values() if item.ended and item.start_ms is not None]
        chars = sum(_speech_chars(item.text) for item in ended)
        pace = sum(item.out_ms for item in ended) / chars if chars else SPEECH_MS_PER_CHAR
        sentences: list[SpokenSentence] = []
        for item in self._items.values():
            if item.start_ms is None:
                continue
            parts = [p.strip() for p in _SENTENCE.findall(item.text) if p.strip()]
            weights = [_speech_chars(p) for p in parts]
            total = sum(weights) or 1
            span = item.out_ms if item.ended else max(item.out_ms, total * pace)
            at = item.start_ms
            for part, weight in zip(parts, weights, strict=True):
                duration = span * weight / total
                sentences.append(SpokenSentence(part, speakable(part), round(at), round(duration)))
                at += duration
        return sentences

    def truncations(self, played_ms: int) -> list[tuple[str, int]]:
        """(item_id, audio_end_ms) for each item the user did not hear to its end, or that was still coming."""
        cuts = []
        for item in self._items.values():
            if item.start_ms is None or not item.item_id:
                continue
            heard = max(0.0, played_ms - item.start_ms)
            if heard < item.out_ms or not item.ended:
                cuts.append((item.item_id, int(min(heard, item.model_ms))))
        return cuts

    def stop(self) -> None:
        self._stopped = True
        self._emit = self._mark = self._on_voiced = _ignore  # let go of the turn (as the speech stage does)

    async def aclose(self) -> None:
        self.stop()


def _ignore(*_args: object) -> None:
    pass
