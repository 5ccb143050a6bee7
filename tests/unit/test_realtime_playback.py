"""The realtime answer's playback: model audio out in the client's format, and what it said when."""

from __future__ import annotations

import io
import wave

from live.engine.events import SentenceAudio
from live.engine.heard import heard_text
from live.engine.speech import OutputFormat
from live.realtime.playback import RealtimePlayback
from live.realtime.events import AudioDelta, TranscriptDelta
from tests.harness.fake_realtime import tone_pcm

RATE = 24000


def playback(fmt: str = "pcm16", rate: int = 0):
    out: list = []
    marks: list[str] = []
    voiced: list[str] = []
    stage = RealtimePlayback(turn_id="t", emit=out.append, output=OutputFormat(fmt, rate), mark=marks.append,
                             on_voiced=voiced.append)  # fmt: skip
    return stage, out, marks, voiced


def speak(stage: RealtimePlayback, text: str, seconds: float, item: str = "item1", chunk_ms: int = 100) -> None:
    pcm = tone_pcm(seconds, RATE)
    step = RATE * chunk_ms // 1000 * 2
    words = text.split(" ")
    chunks = [pcm[i : i + step] for i in range(0, len(pcm), step)]
    for n, chunk in enumerate(chunks):
        if n < len(words):
            stage.text(TranscriptDelta(words[n] + (" " if n < len(words) - 1 else ""), "r1", item))
        stage.audio(AudioDelta(chunk, "r1", item))


def test_pcm16_chunks_go_out_as_they_come_resampled_and_the_last_is_final():
    stage, out, marks, voiced = playback("pcm16", 48000)
    speak(stage, "Hello there friend.", 1.0)
    stage.end()
    audio = [e for e in out if isinstance(e, SentenceAudio)]
    assert len(audio) == 11 and audio[-1].final and not any(e.final for e in audio[:-1])
    assert all(e.sample_rate == 48000 and e.audio_format == "pcm16" for e in audio)
    assert abs(sum(len(e.audio) for e in audio) / 2 / 48 - 1000) <= 1  # one second, at 48 kHz
    assert "".join(e.text for e in audio) == "Hello there friend."  # the words ride with their audio
    assert marks == ["first_audio"] and voiced == ["Hello there friend."]
    assert stage.audio_ms == 1000


def test_wav_clients_get_the_first_audio_at_once_then_wavs_of_about_200_ms():
    stage, out, _marks, _voiced = playback("wav")
    speak(stage, "One two three four five.", 1.0, chunk_ms=50)
    stage.end()
    durations = []
    for event in out:
        with wave.open(io.BytesIO(event.audio)) as w:
            durations.append(w.getnframes() / w.getframerate() * 1000)
    assert durations[0] == 50  # the first delta goes out as it came
    assert all(199 <= d <= 201 for d in durations[1:-1]) and out[-1].final
    assert abs(sum(durations) - 1000) < 1


def test_spoken_spans_share_an_items_audio_by_voiced_characters():
    stage, _out, _marks, _voiced = playback()
    speak(stage, "Hi. This is longer.", 1.5)
    stage.end()
    first, second = stage.spoken
    assert (first.text, second.text) == ("Hi.", "This is longer.")
    assert first.start_ms == 0 and second.start_ms == first.duration_ms
    assert first.duration_ms + second.duration_ms == 1500
    assert first.duration_ms * len("This is longer.") == second.duration_ms * len("Hi.")
    assert heard_text(stage.spoken, first.duration_ms) == "Hi."
    assert heard_text(stage.spoken, 1500) == "Hi. This is longer."


def test_truncations_name_each_item_the_user_did_not_hear_to_its_end():
    stage, out, _marks, _voiced = playback("pcm16", 16000)  # truncation is in the model's time
    speak(stage, "First part.", 1.0, item="a")
    speak(stage, "Second part.", 0.5, item="b")
    seqs = [e.seq for e in out]
    assert seqs == sorted(seqs) and out[seqs.index(1) - 1].final  # the first item ends before the second plays
    assert stage.truncations(1500) == [("b", 500)]  # still coming: the model keeps what it sent, no more
    stage.end()
    assert stage.truncations(1500) == []
    assert stage.truncations(700) == [("a", 700), ("b", 0)]
    assert stage.truncations(1200) == [("b", 200)]


def test_a_stopped_playback_sends_nothing_more():
    stage, out, _marks, _voiced = playback()
    speak(stage, "Hello.", 0.3)
    sent = len(out)
    stage.stop()
    speak(stage, "More words.", 0.3)
    stage.end()
    assert len(out) == sent


def test_a_transcript_running_ahead_of_the_audio_is_not_counted_as_heard():
    # Providers send an item's transcript well before its audio: the whole text came with the first
    # 100 ms of sound. Cut at 1 s of 2.5 s of sound: about the first 40% of the words were heard.
    stage, _out, _marks, _voiced = playback()
    text = "One two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen."
    stage.text(TranscriptDelta(text, "r1", "item1"))
    for chunk_ms in range(0, 1000, 100):
        stage.audio(AudioDelta(tone_pcm(0.1, RATE), "r1", "item1"))
    assert stage.audio_ms == 1000
    heard = heard_text(stage.spoken, 1000)
    assert heard and text.startswith(heard)
    # at SPEECH_MS_PER_CHAR (65 ms) the 98 characters take ~6.4 s: 1 s of it is ~15 characters
    assert len(heard) <= 20, heard


def test_an_item_still_coming_is_paced_like_the_ended_ones():
    stage, _out, _marks, _voiced = playback()
    first = "Alpha beta gamma delta."  # 23 characters in 2 s: ~87 ms a character
    speak(stage, first, 2.0, item="item1")
    second = "Epsilon zeta eta theta iota kappa lambda mu."
    stage.text(TranscriptDelta(second, "r1", "item2"))  # all of its text, then 0.5 s of its audio
    for _ in range(5):
        stage.audio(AudioDelta(tone_pcm(0.1, RATE), "r1", "item2"))
    heard = heard_text(stage.spoken, 2500)
    assert heard.startswith(first) and len(heard) < len(first) + 12, heard
