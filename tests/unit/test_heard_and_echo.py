from live.engine.echo import EchoGuard
from live.engine.heard import SpokenSentence, heard_text
from live.engine.segmenter import speakable


def said(text: str, start_ms: int, duration_ms: int) -> SpokenSentence:
    """A sentence as the speech stage records it: the voice says its speakable words."""
    return SpokenSentence(text, speakable(text), start_ms, duration_ms)


SENTENCES = [
    said("The weather is sunny today.", 0, 2000),
    said("Tomorrow it will rain heavily in the north.", 2000, 3000),
]


def test_nothing_played_means_nothing_heard():
    assert heard_text(SENTENCES, 0) == ""


def test_whole_sentences_that_finished_are_heard():
    assert heard_text(SENTENCES, 2000) == "The weather is sunny today."


def test_cut_sentence_is_trimmed_to_a_word_boundary():
    text = heard_text(SENTENCES, 3500)
    assert text.startswith("The weather is sunny today. Tomorrow it will")
    assert not text.endswith(" ")
    assert "north" not in text


def test_everything_played():
    assert heard_text(SENTENCES, 10_000) == "The weather is sunny today. Tomorrow it will rain heavily in the north."


def test_cjk_cut_by_characters():
    text = heard_text([said("今天天气很好。", 0, 1000)], 500)
    assert text == "今天天"


def test_an_emotion_tag_is_never_heard():
    tagged = [said("[joy] The sky is blue today, with a few clouds.", 0, 2000)]
    assert heard_text(tagged, 100) == ""  # no spoken word yet
    assert heard_text(tagged, 300) == "The"  # the share cuts the voiced words ("[joy]" when it counted the tag)
    assert heard_text(tagged, 1000) == "The sky is blue"
    assert heard_text(tagged, 2000) == "[joy] The sky is blue today, with a few clouds."  # all played: as written


def test_a_silent_sentence_alone_is_not_heard():
    sentences = [said("[joy]", 0, 0), said("Hello there, my good friend.", 0, 1500)]
    assert heard_text(sentences, 50) == ""
    assert heard_text(sentences, 1500) == "[joy] Hello there, my good friend."


def test_echo_guard_drops_the_bots_own_words():
    now = [0.0]
    guard = EchoGuard(clock=lambda: now[0])
    guard.remember("The capital of France is Paris, a lovely city.")
    assert guard.is_echo("capital of France is Paris")
    assert not guard.is_echo("what about Germany then")
    now[0] = 100.0
    assert not guard.is_echo("capital of France is Paris")


def test_echo_guard_ignores_single_words():
    guard = EchoGuard()
    guard.remember("Yes.")
    assert not guard.is_echo("yes")
