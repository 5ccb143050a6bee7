"""Cut streaming agent text into speakable sentences, as it streams.

Pipeline for one turn:  deltas -> `UnspokenFilter` (drops code fences and
<think> blocks) -> `Segmenter` (sentences; the first clause early) ->
`speakable()` per sentence (drops markdown, emoji, bracketed directions).
"""

from __future__ import annotations

import re

_CJK_FINAL = "。！？；…"
_LATIN_FINAL = ".!?"
_CLAUSE = ",，、;；:：—"
_CLOSERS = "\"'”’)）」』]】"
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st vs etc e.g i.e a.m p.m no fig approx dept inc ltd co u.s u.k".split()
)
_THINK_OPEN = "<think>"
_THINK_CLOSE = "</think>"


def _is_cjk(ch: str) -> bool:
    return "\u3000" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff" or "\uff00" <= ch <= "\uffef"


def _word_count(text: str) -> int:
    """Latin words plus CJK characters (about one syllable each) / 2."""
    cjk = sum(1 for ch in text if _is_cjk(ch))
    return len(re.findall(r"[A-Za-z0-9']+", text)) + cjk // 2


class UnspokenFilter:
    """Streaming filter that removes fenced code blocks and <think>…</think>.

    It holds back only the few characters that might open or close a block,
    so ordinary text passes through with no delay.
    """

    def __init__(self) -> None:
        self._pending = ""
        self._in_code = False
        self._in_think = False
        self._at_line_start = True

    def push(self, text: str) -> str:
        self._pending += text
        return self._drain(final=False)

    def flush(self) -> str:
        return self._drain(final=True)

    def _drain(self, final: bool) -> str:
        out: list[str] = []
        buf = self._pending
        i = 0
        while i < len(buf):
            rest = buf[i:]
            if self._in_think:
                end = rest.find(_THINK_CLOSE)
                if end < 0:
                    keep = 0 if final else len(_THINK_CLOSE) - 1
                    i = max(i, len(buf) - keep)
                    break
                i += end + len(_THINK_CLOSE)
                self._in_think = False
                continue
            if rest.startswith("```") or (self._at_line_start and rest.startswith("~~~")):
                newline = rest.find("\n")
                if newline < 0 and not final:
                    break  # wait for the end of the fence line
                self._in_code = not self._in_code
                i += (newline + 1) if newline >= 0 else len(rest)
                self._at_line_start = True
                continue
            if not final and (("```".startswith(rest) and rest) or _THINK_OPEN.startswith(rest)):
                break  # could be the start of a fence or a think tag
            if rest.startswith(_THINK_OPEN):
                self._in_think = True
                i += len(_THINK_OPEN)
                continue
            ch = buf[i]
            if not self._in_code:
                out.append(ch)
            self._at_line_start = ch == "\n"
            i += 1
        self._pending = "" if final else buf[i:]
        return "".join(out)


class Segmenter:
    """Turns a text stream into sentences.

    Sentences end at CJK final punctuation at once, and at Latin `.!?` only
    when whitespace follows, so decimals (3.14), URLs (example.com/x) and
    known abbreviations (Dr., e.g.) never split. With `fast_first_clause`,
    the first segment is cut at the first comma-level pause once it holds
    `first_clause_words` words, so the first audio starts sooner.
    """

    def __init__(
        self,
        *,
        fast_first_clause: bool = True,
        first_clause_words: int = 4,
        min_sentence_chars: int = 8,
    ) -> None:
        self._buf = ""
        self._fast = fast_first_clause
        self._first_words = first_clause_words
        self._min_chars = min_sentence_chars
        self._emitted = 0

    def push(self, text: str) -> list[str]:
        self._buf += text
        out: list[str] = []
        while (cut := self._find_cut()) is not None:
            piece, self._buf = self._buf[:cut], self._buf[cut:]
            self._emit(piece, out)
        return out

    def flush(self) -> list[str]:
        out: list[str] = []
        piece, self._buf = self._buf, ""
        if piece.strip():
            self._emit(piece, out)
        return out

    def _emit(self, piece: str, out: list[str]) -> None:
        piece = piece.strip()
        if not piece:
            return
        out.append(piece)
        self._emitted += 1

    def _find_cut(self) -> int | None:
        buf = self._buf
        for i, ch in enumerate(buf):
            if ch in _CJK_FINAL or ch == "\n":
                end = self._extend_closers(buf, i + 1)
                if self._long_enough(buf[:end]) or ch == "\n":
                    return end
            elif ch in _LATIN_FINAL:
                if i + 1 >= len(buf):
                    return None  # need one more character to decide
                nxt = buf[i + 1]
                if nxt in _CLOSERS:
                    end = self._extend_closers(buf, i + 1)
                    if end >= len(buf):
                        return None
                    nxt = buf[end]
                else:
                    end = i + 1
                if not nxt.isspace():
                    continue  # decimal, URL, "e.g" inside a word
                if ch == "." and self._is_abbreviation(buf[:i]):
                    continue
                if self._long_enough(buf[:end]):
                    return end
            elif self._fast and self._emitted == 0 and ch in _CLAUSE:
                if _word_count(buf[:i]) >= self._first_words:
                    return self._extend_closers(buf, i + 1)
        return None

    def _long_enough(self, text: str) -> bool:
        return len(text.strip()) >= self._min_chars

    @staticmethod
    def _extend_closers(buf: str, end: int) -> int:
        while end < len(buf) and buf[end] in _CLOSERS:
            end += 1
        return end

    @staticmethod
    def _is_abbreviation(before: str) -> bool:
        word = re.search(r"([A-Za-z][A-Za-z.]*)$", before)
        if not word:
            return False
        token = word.group(1).lower()
        return token in _ABBREVIATIONS or (len(token) == 1 and token.isalpha() and token.isupper())


_EMOJI = re.compile(
    "["
    "\U0001f000-\U0001faff"  # emoticons, symbols, pictographs, transport, flags...
    "\u2600-\u27bf"  # misc symbols and dingbats
    "\u2b00-\u2bff"
    "\ufe0f\u200d"
    "]+"
)
_BRACKETED = re.compile(r"\([^()]*\)|（[^（）]*）|\[[^\[\]]*\]|【[^【】]*】|\*[^*\n]+\*(?!\*)")
_LINK = re.compile(r"!\[[^\]]*\]\([^)]*\)|\[([^\]]+)\]\([^)]*\)")
_URL = re.compile(r"https?://\S+")
_MARKUP = re.compile(r"(\*\*|__|~~|`+|^#{1,6}\s+|^>\s?|^\s*[-*+]\s+|^\s*\d+\.\s+|\|)", re.M)
_SPACES = re.compile(r"[ \t\u3000]+")


def speakable(text: str) -> str:
    """The part of a sentence a voice should say.

    Drops markdown markup, link targets, bare URLs, emoji and bracketed stage
    directions such as "(laughs)", "（笑）" or "*smiles*".
    """
    text = _LINK.sub(lambda m: m.group(1) or "", text)
    text = _URL.sub("", text)
    text = _BRACKETED.sub("", text)
    text = _MARKUP.sub("", text)
    text = _EMOJI.sub("", text)
    text = _SPACES.sub(" ", text).strip()
    return text if any(ch.isalnum() for ch in text) else ""
