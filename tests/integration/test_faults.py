"""Faults: providers failing or hanging mid-turn, clients vanishing at every phase, reloads and stops.

For every fault the same four results are checked:
- the client hears about it: an `error` frame with a code (when a client is still there to hear);
- no task is left behind on AstrBot's loop (the loop's tasks are counted before and after);
- no temp file is left behind (AstrBot's data/temp, and audio files in the system temp dir);
- the history is consistent: the WebChat transcript and the LLM's memory hold the user's message
  once and at most the heard part of the answer, with no orphan or duplicate entry.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from live.host.access import default_conversation_id
from tests.harness.audio import speech_like_pcm
from tests.harness.live_client import LiveClient, b64

LONG = (
    "Once upon a time there was a lighthouse keeper. Every night she climbed the stairs. "
    "She polished the great lamp until it shone. Ships passed safely all winter long. "
    "One night a storm came from the north. The waves rose higher than the tower."
)
AUDIO_SUFFIXES = (".wav", ".mp3", ".pcm", ".ogg", ".opus", ".silk", ".amr", ".m4a", ".aac", ".flac")

# ---------------------------------------------------------------- what "nothing leaked" means


@dataclass
class Snapshot:
    tasks: list[str]
    temp_files: set[str]


# Tasks that outlive a turn by design, so they are not counted: the fake provider server's
# keep-alive connections (it shares AstrBot's loop) and the harness's own call that takes the count.
NOT_COUNTED = ("RequestHandler.start", "_invoke")
# The host keeps one WebChat queue listener per conversation for good; it always waits on two
# helper tasks (`queue.get()` and `close_event.wait()`): a new conversation brings these three.
LISTENER = "WebChatQueueMgr._listen_to_queue"
LISTENER_HELPERS = 2


def _task_names() -> list[str]:
    """Each task as `name:coroutine`, so an anonymous host task still says what it runs."""
    named = (f"{t.get_name()}:{getattr(t.get_coro(), '__qualname__', '?')}" for t in asyncio.all_tasks())
    return sorted(n for n in named if not n.endswith(NOT_COUNTED))


def _unexplained(now: list[str], before: list[str]) -> int:
    """How many more tasks than before, not counting new conversations' listeners and their helpers."""
    listeners = sum(n.endswith(LISTENER) for n in now) - sum(n.endswith(LISTENER) for n in before)
    return len(now) - len(before) - max(0, listeners) * (1 + LISTENER_HELPERS)


def temp_files(astrbot) -> set[str]:
    """Every file under AstrBot's data/temp, and audio or `live_*` files directly in the system temp dir."""
    found: set[str] = set()
    host_temp = Path(os.environ["ASTRBOT_ROOT"]) / "data" / "temp"
    if host_temp.is_dir():
        found |= {str(p) for p in host_temp.rglob("*") if p.is_file()}
    system = Path(tempfile.gettempdir())
    for entry in system.iterdir():
        if entry.is_file() and (entry.name.startswith("live_") or entry.suffix.lower() in AUDIO_SUFFIXES):
            found.add(str(entry))
    return found


@pytest.fixture(scope="module", autouse=True)
async def warm(astrbot):
    """One voice turn and one text turn before any count, so the host's lazily started tasks exist."""
    client = await LiveClient.open(astrbot.ws_url(token=astrbot.jwt(), conversation_id="fault-warm-up"))
    astrbot.providers.script_transcript("warming up")
    await voice_turn(client)
    user = await client.until("user_msg", timeout=30)
    await client.until("end", turn=user["turn"], timeout=30)
    await client.send({"t": "text_input", "text": "and once more"})
    user = await client.until("user_msg", timeout=30)
    await client.until("end", turn=user["turn"], timeout=30)
    await client.close()


def snapshot(astrbot) -> Snapshot:
    async def names():
        return _task_names()

    return Snapshot(astrbot.call(names), temp_files(astrbot))


async def settled(astrbot, before: Snapshot, timeout: float = 25.0) -> tuple[list[str], list[str], int]:
    """Wait (bounded) until the loop's tasks are back to what they were; returns (new live-* tasks, new
    temp files, how many more tasks the loop has than before)."""

    async def names():
        return _task_names()

    deadline = time.monotonic() + timeout
    while True:
        now = await asyncio.to_thread(astrbot.call, names)
        live = sorted({n for n in now if n.startswith("live-")} - set(before.tasks))
        extra = _unexplained(now, before.tasks)
        if (not live and extra <= 0) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    leaked_files = sorted(temp_files(astrbot) - before.temp_files)
    if extra > 0:
        print(f"tasks now but not before: {sorted(set(now) - set(before.tasks))}", file=sys.stderr)
    return live, leaked_files, extra


async def assert_nothing_leaked(astrbot, before: Snapshot) -> None:
    live, files, extra = await settled(astrbot, before)
    assert not live, f"live tasks left behind: {live}"
    assert not files, f"temp files left behind: {files}"
    assert extra <= 0, f"{extra} more tasks on AstrBot's loop than before the fault"


# ---------------------------------------------------------------- history


@dataclass
class History:
    transcript: list[dict]  # WebChat records' content, oldest first
    memory: list[dict]  # the LLM conversation's messages


async def history_of(astrbot, conversation_id: str, username: str = "astrbot") -> History:
    umo = f"webchat:FriendMessage:webchat!{username}!{conversation_id}"

    async def read():
        context = astrbot.lifecycle.plugin_manager.context
        records = await context.message_history_manager.get("webchat", conversation_id, page_size=200)
        manager = context.conversation_manager
        cid = await manager.get_curr_conversation_id(umo)
        conv = await manager.get_conversation(umo, cid) if cid else None
        raw = conv.history if conv is not None else "[]"
        memory = json.loads(raw) if isinstance(raw, str) else list(raw or [])
        return [dict(r.content) for r in records], memory

    transcript, memory = await asyncio.to_thread(astrbot.call, read)
    return History(transcript, memory)


def _text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def assert_consistent(history: History, asked: list[str], *, answers: list[str | None]) -> None:
    """Each question once, in order, each followed by at most one answer: exactly `answers[i]` when
    given, else any prefix of it (the heard part). `None` = no answer may be kept for that question."""
    transcript = [(r.get("type"), _text(r.get("message"))) for r in history.transcript]
    users = [t for kind, t in transcript if kind == "user"]
    assert users == asked, transcript
    # the transcript alternates user, then at most one bot record
    for i, (kind, _text_) in enumerate(transcript):
        if kind == "bot":
            assert i > 0 and transcript[i - 1][0] == "user", f"orphan or duplicate bot record: {transcript}"
    memory = [(m.get("role"), _text(m.get("content"))) for m in history.memory if m.get("role") in ("user", "assistant")]
    mem_users = [t for role, t in memory if role == "user"]
    assert len(mem_users) == len(asked) and all(q in u for q, u in zip(asked, mem_users, strict=True)), memory
    for i, (role, _text_) in enumerate(memory):
        if role == "assistant":
            assert i > 0 and memory[i - 1][0] == "user", f"orphan or duplicate assistant message: {memory}"
    for question, answer in zip(asked, answers, strict=True):
        bots = _answers_after(transcript, "user", "bot", question)
        said = _answers_after(memory, "user", "assistant", question)
        if answer is None:
            assert not [b for b in bots if b] and not said, (question, transcript, memory)
        else:
            for got in bots + said:
                assert answer.startswith(got.rstrip("…").strip()) or got.rstrip("…").strip() == answer, (answer, got)


def _answers_after(entries, user_kind, bot_kind, question) -> list[str]:
    out = []
    for i, (kind, text) in enumerate(entries):
        if kind == user_kind and question in text and i + 1 < len(entries) and entries[i + 1][0] == bot_kind:
            out.append(entries[i + 1][1])
    return out


# ---------------------------------------------------------------- helpers


async def voice_turn(client: LiveClient, seconds: float = 0.8, stamp: str = "v1") -> None:
    pcm = speech_like_pcm(seconds)
    await client.send({"t": "start_speaking", "stamp": stamp})
    await client.send({"t": "speaking_part", "data": b64(pcm)})
    await client.send({"t": "end_speaking", "stamp": stamp})


async def eventually(check, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.05)
    return check()


def codes(client: LiveClient, turn: str | None = None) -> list[str]:
    frames = client.of_turn(turn) if turn else client.frames
    return [f["code"] for f in frames if f.get("t") == "error"]


# ---------------------------------------------------------------- provider faults


async def test_llm_error_mid_stream(astrbot, connect, fake):
    before = snapshot(astrbot)
    fake.script_reply(LONG, interval=0.02, fail_after=6)
    client = await connect(conversation_id="fault-llm-error")
    await client.send({"t": "text_input", "text": "tell me about the lighthouse"})
    user = await client.until("user_msg")
    end = await client.until("end", turn=user["turn"], timeout=30)
    assert fake.streams[-1].failed
    errors = [f for f in client.of_turn(user["turn"]) if f["t"] == "error"]
    assert [e["code"] for e in errors] == ["AGENT_FAILED"], client.of_turn(user["turn"])
    spoken = [f["data"]["text"] for f in client.of_turn(user["turn"]) if f["t"] == "bot_text_chunk"]
    assert not any("Error" in s for s in spoken), f"the host's error text was voiced: {spoken}"
    await client.close()
    await assert_nothing_leaked(astrbot, before)
    history = await history_of(astrbot, "fault-llm-error")
    assert_consistent(history, ["tell me about the lighthouse"], answers=[LONG])
    assert end["data"]["interrupted"] is False


async def test_llm_stall_mid_stream_times_out(astrbot, connect, fake, tune):
    tune(agent_idle_timeout_s=1.5)
    before = snapshot(astrbot)
    fake.script_reply(LONG, interval=0.02, stall_after=5, stall_s=20)
    client = await connect(conversation_id="fault-llm-stall")
    await client.send({"t": "text_input", "text": "tell me a slow story"})
    user = await client.until("user_msg")
    end = await client.until("end", turn=user["turn"], timeout=30)
    assert codes(client, user["turn"]) == ["AGENT_FAILED"]
    error = next(f for f in client.of_turn(user["turn"]) if f["t"] == "error")
    assert "no output" in error["data"]
    heard = end["data"]["text"]
    assert heard and LONG.startswith(heard.strip()), heard  # what streamed before the stall was said
    await client.send({"t": "ping", "data": "still here"})
    assert (await client.until("pong"))["data"] == "still here"
    await client.close()
    await assert_nothing_leaked(astrbot, before)
    history = await history_of(astrbot, "fault-llm-stall")
    assert_consistent(history, ["tell me a slow story"], answers=[LONG])


async def test_stt_error(astrbot, connect, fake):
    before = snapshot(astrbot)
    fake.stt_fail = True
    client = await connect(conversation_id="fault-stt-error")
    await voice_turn(client)
    error = await client.until("error", timeout=20)
    assert error["code"] == "STT_FAILED"
    assert (await client.until("state"))["data"]["state"] == "listening"
    assert fake.streams == []
    await client.close()
    await assert_nothing_leaked(astrbot, before)
    assert_consistent(await history_of(astrbot, "fault-stt-error"), [], answers=[])


async def test_stt_hang(astrbot, connect, fake, tune):
    tune(stt_timeout_s=1.0)
    before = snapshot(astrbot)
    fake.stt_delay = 20
    fake.script_transcript("never heard")
    client = await connect(conversation_id="fault-stt-hang")
    await voice_turn(client)
    error = await client.until("error", timeout=20)
    assert error["code"] == "STT_FAILED" and "timed out" in error["data"]
    assert fake.streams == []
    await client.close()
    await assert_nothing_leaked(astrbot, before)
    assert_consistent(await history_of(astrbot, "fault-stt-hang"), [], answers=[])


async def test_tts_error(astrbot, connect, fake):
    before = snapshot(astrbot)
    fake.tts_fail_containing = "storm"
    fake.script_reply(LONG)
    client = await connect(conversation_id="fault-tts-error")
    await client.send({"t": "text_input", "text": "tell me about the storm"})
    user = await client.until("user_msg")
    end = await client.until("end", turn=user["turn"], timeout=30)
    assert codes(client, user["turn"]) == ["TTS_FAILED"]
    assert end["data"] == {"interrupted": False, "text": LONG}
    await client.close()
    await assert_nothing_leaked(astrbot, before)
    assert_consistent(await history_of(astrbot, "fault-tts-error"), ["tell me about the storm"], answers=[LONG])


async def test_tts_hang(astrbot, connect, fake, tune):
    tune(tts_timeout_s=1.0)
    before = snapshot(astrbot)
    fake.tts_delay = 20
    reply = "This sentence never gets a voice."
    fake.script_reply(reply)
    client = await connect(conversation_id="fault-tts-hang")
    await client.send({"t": "text_input", "text": "say something slowly"})
    user = await client.until("user_msg")
    end = await client.until("end", turn=user["turn"], timeout=30)
    assert codes(client, user["turn"]) == ["TTS_FAILED"]
    assert end["data"]["text"] == reply
    await client.close()
    await assert_nothing_leaked(astrbot, before)
    assert_consistent(await history_of(astrbot, "fault-tts-hang"), ["say something slowly"], answers=[reply])


# ---------------------------------------------------------------- the client vanishes


async def _disconnect_during_stt(astrbot, client, fake):
    fake.stt_delay = 3
    fake.script_transcript("you will never hear this")
    await voice_turn(client)
    assert await eventually(lambda: len(fake.stt_started) == 1)
    return None, []  # no question ever reached the agent


async def _disconnect_before_first_token(astrbot, client, fake):
    fake.script_reply(LONG, ttft=3)
    await client.send({"t": "text_input", "text": "wait for it"})
    await client.until("user_msg")
    assert await eventually(lambda: len(fake.streams) == 1)
    return "wait for it", [None]


async def _disconnect_mid_stream(astrbot, client, fake):
    fake.script_reply(LONG, interval=0.1)
    await client.send({"t": "text_input", "text": "stream to me"})
    await client.until("bot_delta_chunk")
    return "stream to me", ["?"]


async def _disconnect_during_tts(astrbot, client, fake):
    fake.tts_delay = 3
    fake.script_reply("A sentence that is slow to voice.")
    await client.send({"t": "text_input", "text": "voice this"})
    await client.until("bot_text_chunk")
    assert await eventually(lambda: len(fake.speeches) >= 1)
    return "voice this", ["?"]


async def _disconnect_while_audio_plays(astrbot, client, fake):
    fake.script_reply(LONG)
    await client.send({"t": "text_input", "text": "play it all"})
    user = await client.until("user_msg")
    await client.until("end", turn=user["turn"], timeout=30)  # all sent; the client would play for ~30 s
    return "play it all", [LONG]


async def _disconnect_during_finalize(astrbot, client, fake):
    fake.script_reply(LONG, interval=0.08)
    await client.send({"t": "text_input", "text": "cut me off"})
    user = await client.until("user_msg")
    await client.until("response", turn=user["turn"])
    await client.send({"t": "interrupt", "turn": user["turn"]})  # report_playback=1: finalize waits for a report
    await client.until("stop_play", turn=user["turn"])
    return "cut me off", ["?"]


PHASES = {
    "during_stt": _disconnect_during_stt,
    "before_first_token": _disconnect_before_first_token,
    "mid_llm_stream": _disconnect_mid_stream,
    "during_tts": _disconnect_during_tts,
    "while_audio_plays": _disconnect_while_audio_plays,
    "during_finalize_after_interrupt": _disconnect_during_finalize,
}


@pytest.mark.parametrize("phase", list(PHASES))
async def test_client_disconnect_at_every_phase_of_a_turn(astrbot, connect, fake, phase):
    conversation = f"fault-gone-{phase}".replace("_", "-")
    before = snapshot(astrbot)
    client = await connect(conversation_id=conversation, report_playback="1")
    await client.until("hello")
    question, answers = await PHASES[phase](astrbot, client, fake)
    await client.close()
    await assert_nothing_leaked(astrbot, before)
    history = await history_of(astrbot, conversation)
    asked = [question] if question else []
    expected = [LONG if a == "?" else a for a in answers]
    assert_consistent(history, asked, answers=expected)
    # the conversation still works after the fault
    fake.reset()
    fake.script_reply("Back again.")
    again = await connect(conversation_id=conversation)
    await again.send({"t": "text_input", "text": "are you there"})
    user = await again.until("user_msg")
    assert (await again.until("end", turn=user["turn"], timeout=30))["data"]["text"] == "Back again."


async def test_a_bare_slash_does_not_block_the_conversation(astrbot, connect, fake):
    """Found by the fuzzer: the host never ends a bare "/" request, which blocked every later turn."""
    before = snapshot(astrbot)
    client = await connect(conversation_id="fault-bare-slash")
    await client.send({"t": "text_input", "text": "/"})
    first = await client.until("user_msg")
    await client.until("end", turn=first["turn"], timeout=20)
    fake.script_reply("Still listening.")
    await client.send({"t": "text_input", "text": "hello after the slash"})
    user = await client.until("user_msg")
    end = await client.until("end", turn=user["turn"], timeout=20)
    assert end["data"]["text"] == "Still listening."
    await client.close()
    await assert_nothing_leaked(astrbot, before)


# ---------------------------------------------------------------- reload and stop with open sessions


SESSIONS = 20


async def open_many(astrbot, n: int, prefix: str) -> list[LiveClient]:
    clients = []
    for i in range(n):
        client = await LiveClient.open(astrbot.ws_url(token=astrbot.jwt(f"{prefix}-{i}")))
        await client.until("hello")
        clients.append(client)
    return clients


@dataclass
class ReloadOutcome:
    closes: list[tuple[int | None, list[dict]]]
    leaked_tasks: list[str]
    leaked_files: list[str]


@pytest.fixture(scope="module")
async def plugin_reloaded(astrbot, providers) -> ReloadOutcome:
    """20 open sessions (one mid-answer), then the plugin reloads (what a settings save does)."""
    from tests.harness.astrbot_server import PLUGIN_NAME

    providers.reset()
    clients = await open_many(astrbot, SESSIONS, "reload")
    providers.script_reply(LONG, interval=0.1)
    await clients[0].send({"t": "text_input", "text": "a turn in flight during the reload"})
    await clients[0].until("bot_delta_chunk")
    before = snapshot(astrbot)

    async def reload():
        return await astrbot.lifecycle.plugin_manager.reload(PLUGIN_NAME)

    reloading = asyncio.get_running_loop().run_in_executor(None, astrbot.call, reload)
    closes = await asyncio.gather(*(c.closed(timeout=30) for c in clients))
    await reloading
    live, files, _ = await settled(astrbot, before)
    providers.reset()
    return ReloadOutcome(list(closes), live, files)


async def test_plugin_reload_with_20_open_sessions(astrbot, plugin_reloaded):
    out = plugin_reloaded
    assert [code for code, _ in out.closes] == [1012] * SESSIONS
    assert not out.leaked_tasks, f"live tasks left behind by the reload: {out.leaked_tasks}"
    assert not out.leaked_files, out.leaked_files
    history = await history_of(astrbot, default_conversation_id("reload-0"), username="reload-0")
    assert_consistent(history, ["a turn in flight during the reload"], answers=[LONG])
    again = await LiveClient.open(astrbot.ws_url(token=astrbot.jwt("after-reload")))
    assert (await again.until("hello"))["t"] == "hello"
    await again.close()


async def test_plugin_reload_tells_every_client_why(plugin_reloaded):
    for _code, frames in plugin_reloaded.closes:
        assert any(f.get("t") == "error" and f.get("code") == "NOT_AVAILABLE" for f in frames), frames[-3:]


# ---------------------------------------------------------------- AstrBot stops with open sessions


@dataclass
class SeparateAstrBot:
    """The real `astrbot run` in its own process (the shared in-process AstrBot cannot be stopped)."""

    proc: asyncio.subprocess.Process
    root: Path
    port: int
    secret: str
    log: Path

    def ws_url(self, **query) -> str:
        from urllib.parse import urlencode

        return f"ws://127.0.0.1:{self.port}/api/v1/live/ws?{urlencode(query)}"

    def jwt(self, username: str) -> str:
        import jwt

        return jwt.encode({"username": username, "exp": int(time.time() + 3600)}, self.secret, algorithm="HS256")


def _default_signals() -> None:
    """In the child before exec: Ctrl-C and SIGTERM as a shell would deliver them. A child inherits
    ignored and blocked signals (Python then never installs its KeyboardInterrupt handler, or the
    signal stays pending), so a SIGINT test of a server started from a test runner that ignores or
    blocks SIGINT would stop nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def _ignored_signals(pid: int) -> str:
    """The blocked and ignored signal masks of a Linux process, for the log of a stop that failed."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return "signal masks unknown"
    return " ".join(line.replace("\t", " ") for line in status.splitlines() if line.startswith(("SigBlk", "SigIgn")))


async def boot_separate_astrbot(providers, root: Path) -> SeparateAstrBot:
    import secrets

    import aiohttp

    from tests.conftest import PLUGIN_CONFIG, REPO
    from tests.harness.astrbot_server import PLUGIN_NAME, free_port, provider_config

    secret = secrets.token_hex(24)
    root.mkdir(parents=True, exist_ok=True)
    (root / ".astrbot").touch()
    (root / "data" / "plugins").mkdir(parents=True)
    (root / "data" / "config").mkdir(parents=True)
    (root / "data" / "plugins" / PLUGIN_NAME).symlink_to(REPO, target_is_directory=True)
    (root / "data" / "config" / f"{PLUGIN_NAME}_config.json").write_text(json.dumps(PLUGIN_CONFIG), encoding="utf-8-sig")
    config = {**provider_config(providers.base_url), "dashboard": {"enable": True, "jwt_secret": secret}}
    (root / "data" / "cmd_config.json").write_text(json.dumps(config), encoding="utf-8-sig")
    port = free_port()
    log = root / "astrbot.log"
    env = {**os.environ, "ASTRBOT_ROOT": str(root), "ASTRBOT_DISABLE_METRICS": "1", "DASHBOARD_HOST": "127.0.0.1"}
    astrbot_cli = Path(sys.executable).with_name("astrbot")
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            str(astrbot_cli), "run", "--port", str(port), cwd=root, env=env, stdout=out, stderr=asyncio.subprocess.STDOUT,
            preexec_fn=_default_signals,
        )
    server = SeparateAstrBot(proc, root, port, secret, log)
    deadline = time.monotonic() + 120
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline and proc.returncode is None:
            try:
                async with http.get(f"http://127.0.0.1:{port}/api/v1/live/health") as r:
                    if r.status == 200:
                        return server
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    proc.kill()
    await proc.wait()
    raise RuntimeError(f"the separate AstrBot did not come up: {log.read_text(errors='replace')[-2000:]}")


@dataclass
class StopOutcome:
    exit_code: int | None
    closes: list[tuple[int | None, list[dict]]]
    log: str
    leftover_temp: list[str]


@pytest.fixture(scope="module")
async def astrbot_stopped(providers, astrbot, tmp_path_factory) -> StopOutcome:
    """20 open sessions (one mid-answer) on a separate AstrBot, then SIGINT (Ctrl-C, `systemctl stop`)."""
    providers.reset()
    server = await boot_separate_astrbot(providers, tmp_path_factory.mktemp("stop") / "astrbot")
    exit_code = None
    try:
        clients = []
        for i in range(SESSIONS):
            client = await LiveClient.open(server.ws_url(token=server.jwt(f"stop-{i}")))
            await client.until("hello")
            clients.append(client)
        providers.script_reply(LONG, interval=0.1)
        await clients[0].send({"t": "text_input", "text": "a turn in flight while AstrBot stops"})
        await clients[0].until("bot_delta_chunk", timeout=30)
        print(f"test process SIGINT: {signal.getsignal(signal.SIGINT)!r}; child {_ignored_signals(server.proc.pid)}")
        server.proc.send_signal(signal.SIGINT)
        closes = await asyncio.gather(*(c.closed(timeout=60) for c in clients))
        exit_code = await asyncio.wait_for(server.proc.wait(), 60)
    finally:
        if server.proc.returncode is None:
            server.proc.kill()
            await server.proc.wait()
        providers.reset()
    temp = server.root / "data" / "temp"
    leftover = [str(p) for p in temp.rglob("*") if p.is_file()] if temp.is_dir() else []
    return StopOutcome(exit_code, list(closes), server.log.read_text(errors="replace"), leftover)


async def test_astrbot_stop_with_20_open_sessions(astrbot_stopped):
    out = astrbot_stopped
    print(f"separate AstrBot exited with {out.exit_code}; close codes {sorted({c for c, _ in out.closes})}")
    assert out.exit_code == 0, out.log[-3000:]  # a clean exit, nothing of ours kept the loop alive
    assert [code for code, _ in out.closes] == [1012] * SESSIONS, out.log[-3000:]
    assert "Live Mode stopped" in out.log
    assert not out.leftover_temp, out.leftover_temp


async def test_astrbot_stop_tells_every_client_why(astrbot_stopped):
    for _code, frames in astrbot_stopped.closes:
        assert any(f.get("t") == "error" and f.get("code") == "NOT_AVAILABLE" for f in frames), frames[-3:]


# ---------------------------------------------------------------- a finished turn is freed at once


async def test_a_finished_turn_is_freed_without_waiting_for_the_cyclic_gc(astrbot, connect, fake):
    """Found by the soak: turns lived until a full GC pass (the turn and its speech stage held each other),
    so a busy server's memory grew for minutes. With the GC paused, a finished turn must still go."""
    import gc
    import weakref

    client = await connect(conversation_id="fault-freed-turn")
    fake.script_reply("The first answer, in two parts. Here is the second.")
    await client.send({"t": "text_input", "text": "first question"})
    first = await client.until("user_msg")
    await client.until("end", turn=first["turn"], timeout=20)

    async def current_turn():
        plugin = astrbot.plugin()
        connection = next(c for c in plugin.server.connections.values() if c.session.conversation.conversation_id == "fault-freed-turn")
        return weakref.ref(connection.session._turn)

    ref = astrbot.call(current_turn)
    gc.disable()  # process-wide: AstrBot's thread too
    try:
        fake.script_reply("The second answer.")
        await client.send({"t": "text_input", "text": "second question"})
        second = await client.until("user_msg")
        await client.until("end", turn=second["turn"], timeout=20)
        await client.until("state", data={"state": "listening"})
        assert await eventually(lambda: ref() is None, timeout=5), gc.get_referrers(ref())[:5] if ref() else None
    finally:
        gc.enable()
