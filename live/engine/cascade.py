"""The cascaded backend: speech-to-text, then the host's agent, then text-to-speech.

`CascadeAnswerer.answer(turn)` is the body of a turn's task. It sets
`turn.agent_run` (what writes history) and `turn.stage` (what plays) as soon
as they exist, so that `Turn.interrupt()` can cut them at any moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from ..audio.wav import pcm16_to_wav
from ..errors import ErrorCode
from .events import AgentTextDelta, BotReplied, ErrorRaised, NothingHeard, TurnEnded, UserTranscribed
from .ports import AGENT_ERROR, AgentDelta, AgentNotice
from .speech import SpeechStage
from .tasks import cancel_and_wait
from .turn import AGENT_CLOSE_TIMEOUT_S, INPUT_SAMPLE_RATE, Turn


class CascadeAnswerer:
    backend = "cascade"

    async def answer(self, turn: Turn) -> None:
        text = turn.text if turn.text is not None else await transcribe(turn)  # voice with text: judged over a pause
        if not text:
            return
        turn.emit(UserTranscribed(turn.id, text, int(time.time() * 1000), turn.viewers))
        turn.extra["backend"] = self.backend
        await self.reply(turn, text)

    async def reply(self, turn: Turn, text: str) -> None:
        """Answer `text`, the user's words already told to the client (also the realtime backend's fallback)."""
        turn.set_state("thinking")  # voice turns said so when STT started
        await turn.wait_previous_settled()  # the next question sees the cut answer
        ctx = turn.ctx
        synthesizer = await ctx.speech.synthesizer(ctx.conversation)
        stage = turn.stage = SpeechStage(
            turn_id=turn.id,
            synthesizer=synthesizer,
            emit=turn.emit_playback,
            output=ctx.output,
            fast_first_clause=ctx.fast_first_clause,
            parallelism=ctx.tts_parallelism,
            sentence_timeout_s=ctx.tts_timeout_s,
            mark=turn.mark,
            on_voiced=ctx.echo.remember if ctx.echo else lambda _t: None,
        )
        delivery = asyncio.create_task(stage.deliver(), name=f"live-deliver-{turn.id}")
        try:
            turn.mark("agent_start")
            run = turn.agent_run = ctx.agent.start(ctx.conversation, text, speculative=turn.speculative)
            timed_out = await _stream_agent(turn, stage)
            stage.end_input()
            await delivery
        finally:
            await cancel_and_wait([delivery])
            await stage.aclose()
        if not stage.produced_audio:
            turn.emit(BotReplied(turn.id, turn.reply_text, int(time.time() * 1000)))
        turn.mark("turn_end")
        turn.emit(TurnEnded(turn.id, interrupted=False, text=turn.reply_text))
        turn.emit(turn.metrics())
        turn.set_state("listening")
        if timed_out:  # the answer was cut short: history keeps what was said (the next turn waits for this)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run.closed(), AGENT_CLOSE_TIMEOUT_S)
            await run.keep_heard(turn.reply_text)

    async def aclose(self) -> None:
        """Nothing to end: each turn's agent run ends with its turn."""


async def _stream_agent(turn: Turn, stage: SpeechStage) -> bool:
    """Feed the agent's text to the stage; True when the agent went quiet for too long."""
    run = turn.agent_run
    assert run is not None
    idle = turn.ctx.agent_idle_timeout_s
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(idle) as deadline:
            async for output in run.outputs():
                deadline.reschedule(loop.time() + idle)
                if isinstance(output, AgentDelta) and output.text:
                    turn.mark("llm_first_token")
                    turn.reply_text += output.text
                    turn.emit(AgentTextDelta(turn.id, output.text))
                    stage.push(output.text)
                elif isinstance(output, AgentNotice) and output.kind == AGENT_ERROR:
                    # the host reports a failed agent (an LLM error mid-stream) as text: a code, not speech
                    turn.emit(ErrorRaised(ErrorCode.AGENT_FAILED, f"the agent failed: {output.text}", turn.id))
    except TimeoutError:
        run.stop()
        turn.emit(ErrorRaised(ErrorCode.AGENT_FAILED, f"the agent gave no output for {idle:.0f} s", turn.id))
        return True
    return False


async def transcribe(turn: Turn) -> str | None:
    """The turn's utterance as text, or None (with an error or a `NothingHeard` told) when there is none."""
    assert turn.pcm is not None
    ctx = turn.ctx
    transcriber = await ctx.speech.transcriber(ctx.conversation)
    if transcriber is None:
        turn.emit(
            ErrorRaised(
                ErrorCode.STT_NOT_CONFIGURED,
                "No speech-to-text provider is configured: pick one in the Live Mode "
                "plugin settings or enable one in AstrBot's provider settings.",
                turn.id,
            )
        )
        return None
    turn.set_state("thinking")
    started = turn.clock()
    try:
        async with asyncio.timeout(ctx.stt_timeout_s):
            text = (await transcriber.transcribe(pcm16_to_wav(turn.pcm, INPUT_SAMPLE_RATE))).strip()
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        reason = f"timed out after {ctx.stt_timeout_s:.0f} s" if isinstance(exc, TimeoutError) else exc
        turn.emit(ErrorRaised(ErrorCode.STT_FAILED, f"speech recognition failed: {reason}", turn.id))
        turn.set_state("listening")
        if turn.on_transcript is not None:
            turn.on_transcript(None)
        return None
    turn.mark("stt_done")
    if turn.on_transcript is not None:
        turn.on_transcript(text)
    turn.extra["stt_ms"] = round((turn.clock() - started) * 1000)
    reason = None
    if not text:
        reason = "empty_transcript"
    elif turn.echo_possible and ctx.echo is not None and ctx.echo.is_echo(text):
        reason = "echo"
    if reason:
        turn.emit(NothingHeard(turn.id, reason))  # type: ignore[arg-type]
        turn.set_state("listening")
        return None
    return text
