"""Golden tables for the sentence segmenter and the speakable filters."""

import pytest

from live.engine.segmenter import Segmenter, UnspokenFilter, speakable


def segment(chunks, **kw):
    seg = Segmenter(**kw)
    out = []
    for chunk in chunks:
        out += seg.push(chunk)
    return out + seg.flush()


def stream_chars(text, **kw):
    return segment(list(text), **kw)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Hello there. How are you? Fine!", ["Hello there.", "How are you?", "Fine!"]),
        ("Pi is 3.14 roughly. Next one.", ["Pi is 3.14 roughly.", "Next one."]),
        ("Visit example.com/docs today. Bye now.", ["Visit example.com/docs today.", "Bye now."]),
        ("Ask Dr. Smith about it. Then go.", ["Ask Dr. Smith about it.", "Then go."]),
        ("Use e.g. apples here. Done now.", ["Use e.g. apples here.", "Done now."]),
        ("He said \"stop.\" Then he left.", ["He said \"stop.\"", "Then he left."]),
        ("你好。今天天气很好！我们去公园吧？", ["你好。今天天气很好！", "我们去公园吧？"]),
        ("第一行\n第二行。", ["第一行", "第二行。"]),
    ],
)
def test_sentences_without_fast_path(text, expected):
    assert stream_chars(text, fast_first_clause=False) == expected


def test_first_clause_fast_path_cuts_at_the_first_comma_with_enough_words():
    out = stream_chars("Well, I think that the weather, honestly, is lovely today. It is sunny.")
    assert out[0] == "Well, I think that the weather,"
    assert out[1:] == ["honestly, is lovely today.", "It is sunny."]


def test_fast_path_handles_cjk_commas():
    out = stream_chars("今天的天气非常好，我们一起去公园散步吧。好的。")
    assert out[0] == "今天的天气非常好，"


def test_fast_path_only_applies_to_the_first_segment():
    out = stream_chars("One two three four five. Then a, b, c and d went home.")
    assert out == ["One two three four five.", "Then a, b, c and d went home."]


def test_sentence_is_released_before_the_stream_ends():
    seg = Segmenter(fast_first_clause=False)
    assert seg.push("It works. More") == ["It works."]
    assert seg.flush() == ["More"]


def test_latin_full_stop_waits_for_one_character_of_lookahead():
    seg = Segmenter(fast_first_clause=False)
    assert seg.push("Version 2.") == []
    assert seg.push("5 is out. ") == ["Version 2.5 is out."]


def test_tiny_sentences_merge_with_the_next():
    assert stream_chars("Ok. That is fine.", fast_first_clause=False) == ["Ok. That is fine."]


def test_code_fences_and_think_blocks_are_never_spoken():
    flt = UnspokenFilter()
    text = "<think>plan the answer</think>Here it is:\n```python\nprint('x. y')\n```\nDone."
    out = "".join(flt.push(ch) for ch in text) + flt.flush()
    assert out == "Here it is:\nDone."


def test_unspoken_filter_passes_plain_text_immediately():
    flt = UnspokenFilter()
    assert flt.push("Hello world") == "Hello world"


@pytest.mark.parametrize(
    "raw, spoken",
    [
        ("**Bold** and _plain_ text.", "Bold and _plain_ text."),
        ("See [the docs](https://x.y/z) now.", "See the docs now."),
        ("Great job 🎉👍!", "Great job !"),
        ("(laughs) That is funny.", "That is funny."),
        ("（笑）真好。", "真好。"),
        ("*smiles* Hi there.", "Hi there."),
        ("## Heading", "Heading"),
        ("- item one", "item one"),
        ("🎉🎉", ""),
        ("`code` here", "code here"),
    ],
)
def test_speakable(raw, spoken):
    assert speakable(raw) == spoken
