"""The benchmark's measurement functions work against the session's AstrBot (shapes, not speeds)."""

from bench.measure import (
    CONVERSATIONS,
    ProviderLatency,
    playback_gaps_ms,
    run_turns,
    summarize_turns,
)

FAST = ProviderLatency(stt_s=0.01, ttft_s=0.02, token_s=0.005, tts_s=0.01)


def test_playback_gaps_follow_a_real_time_player():
    # (arrival s, duration ms): the 2nd arrives 0.1 s before the 1st ends, the 3rd 0.2 s after the 2nd ends
    assert [round(g, 6) for g in playback_gaps_ms([(0.0, 1000), (0.9, 500), (1.7, 300)])] == [0.0, 200.0]
    assert playback_gaps_ms([(0.0, 100)]) == []


async def test_one_voice_turn_per_side_is_measured(astrbot, fake):
    tts_enabled = astrbot.lifecycle.astrbot_config["provider_tts_settings"]["enable"]
    samples = await run_turns(astrbot, fake, conversations=CONVERSATIONS[:1], rounds=1, lat=FAST, warmup=False)
    assert sorted(s.side for s in samples) == ["builtin", "plugin"]
    for s in samples:
        assert s.ok, (s.side, s.error)
        assert 0 < s.first_audio_ms <= s.end_ms
        assert s.responses and all(d > 0 for _, d in s.responses)
        assert all(g >= 0 for g in s.gaps_ms) and len(s.gaps_ms) == len(s.responses) - 1
        assert s.provider["stt_ms"] > 0 and s.provider["tts_first_clause_ms"] > 0
        assert s.provider["llm_ttft_ms"] <= s.provider["llm_to_first_clause_ms"]
        assert s.overhead_ms is not None
        assert {"ingest_ms", "stt_to_llm_ms", "clause_to_tts_ms", "tts_to_client_ms"} <= s.breakdown.keys()
    plugin = next(s for s in samples if s.side == "plugin")
    assert plugin.provider["first_clause"] == "Sure, it's sunny and warm today,"  # the first-clause fast path
    assert plugin.plugin_metrics and "first_audio" in plugin.plugin_metrics["timeline"]
    table = summarize_turns(samples)
    assert table["plugin"]["first_audio_ms"]["n"] == 1 and table["builtin"]["first_audio_ms"]["n"] == 1
    assert isinstance(table["ratio_first_audio_median"], float)
    # the built-in's switches on the booted instance were put back
    assert astrbot.lifecycle.astrbot_config["provider_tts_settings"]["enable"] == tts_enabled


async def test_the_turn_taking_suite_measures_every_kind_of_scenario(astrbot, fake, say):
    """One of each scenario, streamed in real time under the silence rule (~30 s)."""
    from bench import turn_taking as tt

    plan = tt.Plan(complete=1, thinking=1, backchannel_rounds=1, backchannels=("mm-hmm",), interruptions=1,
                   provider_sets=("instant",))  # fmt: skip
    voices = tt.make_voices(say, plan)
    result = await tt.run_suite(astrbot, fake, voices, plan=plan, policies=tt.POLICIES[:1], warmup=False)
    by_kind = {s["kind"]: s for s in result["samples"]}
    assert sorted(by_kind) == ["backchannel", "complete", "interruption", "thinking"]
    assert all(s["ok"] for s in result["samples"]), [(s["kind"], s["error"]) for s in result["samples"]]
    complete = by_kind["complete"]
    assert 0 < complete["user_msg_ms"] < complete["first_audio_ms"]
    assert complete["eot"]["eot_mode"] == "silence" and complete["eot"]["eot_reason"] == "silence"
    assert by_kind["thinking"]["ended_turn_in_pause"] is True  # 800 ms > the 500 ms silence rule
    assert by_kind["interruption"]["answer_ended"] is True and by_kind["interruption"]["stop_play_ms"] > 0
    assert by_kind["backchannel"]["answer_ended"] in (True, False)
    row = result["summary"]["silence"]
    assert row["complete_instant"]["n"] == 1 and row["thinking"] == {**row["thinking"], "ended_turn": 1, "n": 1}
    assert "| thinking pauses (600-900 ms) that ended the turn | 1 of 1 (100%) |" in tt.markdown(result)
    assert astrbot.plugin().settings.end_of_turn == "model"  # the suite put the settings back


async def test_the_realtime_suite_measures_both_backends_and_the_swap(astrbot, fake):
    """One short turn and one interrupt per backend, one hot-swap round, one cold/warm client round."""
    from bench import realtime as rt
    from bench.measure import Conversation

    saved = astrbot.plugin().settings
    plan = rt.Plan(rounds=1, interrupt_rounds=1, swap_rounds=1)
    result = await rt.run_suite(astrbot, fake, plan=plan, conversations=(Conversation("short", "hi", "Hello there."),))
    by = {(s["side"], s["kind"]): s for s in result["samples"]}
    assert sorted(by) == [("cascade", "interrupt"), ("cascade", "turn"), ("realtime", "interrupt"), ("realtime", "turn")]
    assert all(s["ok"] for s in result["samples"]), [(s["side"], s["kind"], s["error"]) for s in result["samples"]]
    for side in rt.SIDES:
        turn, cut = by[(side, "turn")], by[(side, "interrupt")]
        assert 0 < turn["user_msg_ms"] and 0 < turn["first_audio_ms"] <= turn["end_ms"]
        assert turn["metrics"].get("backend", "cascade") == side and turn["audio_ms"] > 0  # cascade: no field
        assert cut["stop_play_ms"] is not None and cut["provider_stopped_ms"] is not None, cut
        assert cut["audio_after_stop_play"] == 0
    swap = result["swap_samples"][0]
    assert [swap[k]["swap"] for k in ("at_connect", "after_expiry", "kept")] == ["cold", "warm", "kept"], swap
    assert swap["after_expiry"]["session"] != swap["at_connect"]["session"]
    assert swap["kept"]["session"] == swap["after_expiry"]["session"]
    client = result["client_swap_samples"][0]
    assert client["cold"]["first_audio_ms"] > 0 and client["warm"]["first_audio_ms"] > 0
    assert result["by_side"]["realtime"]["first_audio_ms"]["n"] == 1
    assert "| first audio after the end of speech |" in rt.markdown(result)
    assert astrbot.plugin().settings == saved  # the suite put the settings back
