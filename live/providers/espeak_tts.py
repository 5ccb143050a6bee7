"""Light fallback text-to-speech through the espeak-ng command-line program.

Robotic but tiny and fast (about 15 ms per sentence), and the only offline
voice we have for Chinese: Debian's ``cmn`` voice reads pinyin digits with
English rules, so mostly-CJK text goes to ``cmn-latn-pinyin`` instead.
Text goes in on stdin, never argv, so a reply starting with "-" is not an option.

Example:
    >>> pcm, rate = await EspeakSynthesizer().synthesize("Hello there.")
"""

from __future__ import annotations

import asyncio
import shutil

from ..audio.wav import wav_to_pcm16

CHINESE_VOICE = "cmn-latn-pinyin"
ESPEAK_SAMPLE_RATE = 22050
_INSTALL_HINT = "install it with: apt-get install espeak-ng (Debian/Ubuntu) or brew install espeak-ng (macOS)"


def _is_cjk(ch: str) -> bool:
    code = ord(ch)
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0x20000 <= code <= 0x2A6DF
        or 0xF900 <= code <= 0xFAFF
    )


def mostly_cjk(text: str) -> bool:
    """True when more than half of the letters are CJK ideographs."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return False
    return sum(1 for ch in letters if _is_cjk(ch)) * 2 > len(letters)


class EspeakSynthesizer:
    """Runs one ``espeak-ng --stdout`` process per request; holds no state between calls."""

    sample_rate = ESPEAK_SAMPLE_RATE

    def __init__(self, voice: str = "en-us", speed_wpm: int | None = None, binary: str = "espeak-ng") -> None:
        self.voice = voice
        self.speed_wpm = speed_wpm
        self.binary = binary

    def __repr__(self) -> str:
        return f"EspeakSynthesizer(voice={self.voice!r})"

    def executable(self) -> str:
        """Absolute path of the espeak-ng binary, or a RuntimeError saying how to install it."""
        path = shutil.which(self.binary)
        if path is None:
            raise RuntimeError(f"the {self.binary} program was not found on PATH; {_INSTALL_HINT}")
        return path

    def voice_for(self, text: str) -> str:
        """The configured voice, or the pinyin Mandarin voice for mostly-CJK text."""
        return CHINESE_VOICE if mostly_cjk(text) else self.voice

    async def synthesize(self, text: str) -> tuple[bytes, int]:
        """Speak `text`; returns (PCM16 mono, sample rate). Empty text gives no audio."""
        if not text.strip():
            return b"", self.sample_rate
        args = [self.executable(), "--stdout", "-v", self.voice_for(text)]
        if self.speed_wpm:
            args += ["-s", str(int(self.speed_wpm))]
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await proc.communicate(text.encode("utf-8"))
        except asyncio.CancelledError:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            raise
        if proc.returncode != 0:
            detail = err.decode("utf-8", "replace").strip()[:300]
            raise RuntimeError(f"espeak-ng failed with exit code {proc.returncode}: {detail}")
        try:
            return wav_to_pcm16(out)
        except ValueError as exc:
            raise RuntimeError(f"espeak-ng produced no usable audio: {exc}") from exc
