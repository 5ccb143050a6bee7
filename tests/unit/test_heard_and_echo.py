from live.engine.echo import EchoGuard
from live.engine.heard import SpokenSentence, heard_text

SENTENCES = [
    SpokenSentence("The weather is sunny today.", 0, 2000),
    SpokenSentence("Tomorrow it will rain heavily in the north.", 2000, 3000),
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
    text = heard_text([SpokenSentence("今天天气很好。", 0, 1000)], 500)
    assert text == "今天天"


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
