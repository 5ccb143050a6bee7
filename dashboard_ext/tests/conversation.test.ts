import { describe, expect, it } from 'vitest'
import { reactive } from 'vue'
import { Conversation } from '../src/lib/conversation'
import type { ServerFrame } from '../src/lib/protocol'

const play = (c: Pick<Conversation, 'apply'>, frames: ServerFrame[]) => frames.forEach((f) => c.apply(f))

describe('Conversation', () => {
  it('builds a turn from user_msg and streamed deltas, and captions it', () => {
    const c = reactive(new Conversation())
    play(c, [
      { t: 'vad', data: { state: 'speech_start' } },
      { t: 'vad', data: { state: 'speech_end' } },
      { t: 'state', data: { state: 'thinking' } },
      { t: 'user_msg', turn: 'a', data: { text: 'hello' } },
      { t: 'bot_delta_chunk', turn: 'a', data: { text: 'Hi ' } },
      { t: 'bot_delta_chunk', turn: 'a', data: { text: 'there.' } },
      { t: 'bot_text_chunk', turn: 'a', seq: 1, data: { text: 'Hi there.' } },
    ])
    expect(c.userSpeaking).toBe(false)
    expect(c.serverState).toBe('thinking')
    expect(c.currentTurn).toBe('a')
    expect(c.caption).toEqual({ turn: 'a', user: 'hello', bot: 'Hi there.' })
    expect(c.entries.map((e) => [e.role, e.text, e.pending])).toEqual([
      ['user', 'hello', undefined],
      ['bot', 'Hi there.', true],
    ])
    c.apply({ t: 'end', turn: 'a', data: { interrupted: false, text: 'Hi there.' } })
    expect(c.entries[1].pending).toBe(false)
    expect(c.entries[1].interrupted).toBeUndefined()
  })

  it('marks an interrupted answer and shows what the end says was heard', () => {
    const c = new Conversation()
    play(c, [
      { t: 'user_msg', turn: 'b', data: { text: 'tell me a story' } },
      { t: 'bot_delta_chunk', turn: 'b', data: { text: 'Once upon a time, there was a fox.' } },
      { t: 'stop_play', turn: 'b' },
    ])
    expect(c.entries[1]).toMatchObject({ interrupted: true, pending: true })
    expect(c.entries[1].heard).toBeUndefined()
    c.apply({ t: 'end', turn: 'b', data: { interrupted: true, text: '', heard: 'Once upon a time,…' } })
    expect(c.entries[1]).toMatchObject({
      role: 'bot',
      text: 'Once upon a time, there was a fox.',
      heard: 'Once upon a time,',
      interrupted: true,
      pending: false,
    })
  })

  it('shows nothing extra for an interrupted answer whose end has no heard text (an older server)', () => {
    const c = new Conversation()
    play(c, [
      { t: 'user_msg', turn: 'h', data: { text: 'weather?' } },
      { t: 'bot_delta_chunk', turn: 'h', data: { text: 'Sunny today. Rain tomorrow.' } },
      { t: 'end', turn: 'h', data: { interrupted: true, text: '' } },
    ])
    expect(c.entries[1]).toMatchObject({ interrupted: true, text: 'Sunny today. Rain tomorrow.' })
    expect(c.entries[1].heard).toBeUndefined()
  })

  it('a local interrupt marks the answer at once', () => {
    const c = new Conversation()
    play(c, [
      { t: 'user_msg', turn: 'i', data: { text: 'go on' } },
      { t: 'bot_delta_chunk', turn: 'i', data: { text: 'Well,' } },
    ])
    c.stopped('i')
    expect(c.entries[1].interrupted).toBe(true)
  })

  it('falls back to sentence chunks when a server sends no deltas', () => {
    const c = new Conversation()
    play(c, [
      { t: 'bot_text_chunk', turn: 'c', seq: 1, data: { text: 'One. ' } },
      { t: 'bot_text_chunk', turn: 'c', seq: 2, data: { text: 'Two.' } },
    ])
    expect(c.entries[0].text).toBe('One. Two.')
  })

  it('shows bot_msg (a text-only answer) and end text when nothing streamed', () => {
    const c = new Conversation()
    play(c, [
      { t: 'bot_msg', turn: 'd', data: { text: 'No voice here.' } },
      { t: 'end', turn: 'e', data: { interrupted: false, text: 'Only in end.' } },
    ])
    expect(c.entries.map((e) => e.text)).toEqual(['No voice here.', 'Only in end.'])
  })

  it('records errors, metrics, hello and the not-heard hint', () => {
    const c = new Conversation()
    play(c, [
      { t: 'hello', data: { protocol: 'astrbot-live', version: 1, conversation_id: 'cid' } },
      { t: 'error', code: 'STT_FAILED', data: 'no STT provider', turn: 'f' },
      { t: 'transcript_empty', turn: 'f', data: { reason: 'empty_transcript' } },
      { t: 'transcript_empty', turn: 'f', data: { reason: 'echo' } },
      { t: 'metrics', turn: 'f', data: { timeline: { speech_end: 0, stt_done: 120 } } },
    ])
    expect(c.hello?.conversation_id).toBe('cid')
    expect(c.entries[0]).toMatchObject({ role: 'notice', code: 'STT_FAILED', text: 'no STT provider' })
    expect(c.notHeardCount).toBe(2) // an echo is shown too, never dropped silently
    expect(c.notHeardReason).toBe('echo')
    expect(c.metrics).toMatchObject({ turn: 'f', timeline: { stt_done: 120 } })
  })

  it('follows a pause: backchannel and noise notices, resume, and a cut that ends the pause', () => {
    const c = new Conversation()
    play(c, [
      { t: 'bot_delta_chunk', turn: 'a', data: { text: 'A long answer' } },
      { t: 'pause_play', turn: 'a' },
    ])
    expect(c.paused).toBe(true)
    play(c, [
      { t: 'transcript_empty', turn: 'x', data: { reason: 'backchannel' } },
      { t: 'resume_play', turn: 'a' },
    ])
    expect([c.paused, c.notHeardReason, c.notHeardCount]).toEqual([false, 'backchannel', 1])
    play(c, [{ t: 'pause_play', turn: 'a' }, { t: 'transcript_empty', turn: 'y', data: { reason: 'noise' } }])
    expect(c.notHeardReason).toBe('noise')
    play(c, [{ t: 'transcript_empty', turn: 'z', data: { reason: 'from a newer server' as never } }])
    expect(c.notHeardReason).toBe('empty_transcript') // an unknown reason is still shown
    play(c, [{ t: 'stop_play', turn: 'a' }])
    expect(c.paused).toBe(false)
    expect(c.entries.find((e) => e.turn === 'a')?.interrupted).toBe(true)
  })

  it('reset() clears in-flight state after a disconnect', () => {
    const c = new Conversation()
    play(c, [
      { t: 'state', data: { state: 'speaking' } },
      { t: 'bot_delta_chunk', turn: 'g', data: { text: 'x' } },
    ])
    c.reset()
    expect(c.serverState).toBe('listening')
    expect(c.entries[0].pending).toBe(false)
  })

  it('fills the transcript with the earlier turns from the history when a connection opens', () => {
    const c = reactive(new Conversation())
    play(c, [
      { t: 'user_msg', turn: 'old', data: { text: 'shown before the reconnect' } },
      { t: 'hello', data: { protocol: 'astrbot-live', version: 1, conversation_id: 'cid' } },
      { t: 'user_msg', turn: 'new', data: { text: 'asked just now' } },
    ])
    c.loadHistory([
      { role: 'user', text: 'first question', interrupted: false, ts: 1 },
      { role: 'bot', text: 'A first answer, cut…', interrupted: true, ts: 2 },
      { role: 'user', text: 'asked just now', interrupted: false, ts: 3 }, // saved while the history was read
    ])
    expect(c.entries.map((e) => [e.role, e.text, e.interrupted])).toEqual([
      ['user', 'first question', undefined],
      ['bot', 'A first answer, cut…', true],
      ['user', 'asked just now', undefined],
    ])
    expect(new Set(c.entries.map((e) => e.id)).size).toBe(3)
    c.apply({ t: 'bot_delta_chunk', turn: 'new', data: { text: 'Answer.' } })
    expect(c.entries[3]).toMatchObject({ role: 'bot', turn: 'new', text: 'Answer.' })
  })
})
