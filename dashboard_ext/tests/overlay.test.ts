import { describe, expect, it } from 'vitest'
import { reactive } from 'vue'
import { captionText, missingOption, OverlayCaptions, overlayOptions, overlaySocketParams } from '../src/lib/overlay'
import type { ServerFrame } from '../src/lib/protocol'

const play = (c: Pick<OverlayCaptions, 'apply'>, frames: ServerFrame[]) => frames.map((f) => c.apply(f))

describe('overlay options', () => {
  it('reads the room, credentials and display settings from the URL, silent by default', () => {
    const o = overlayOptions('?room=stream&token=j.w.t&font_size=48&max_lines=2&hold=6&align=left')
    expect(o).toEqual({
      room: 'stream',
      token: 'j.w.t',
      apiKey: null,
      username: null,
      audio: false,
      fontSize: 48,
      maxLines: 2,
      holdMs: 6000,
      align: 'left',
    })
    expect(overlaySocketParams(o)).toEqual({ token: 'j.w.t', room: 'stream', role: 'listener', audio: '0' })
  })

  it('joins with an API key and username, and with audio=1 asks for audio', () => {
    const o = overlayOptions('?room=stream&api_key=k3y&username=alice&audio=1', 'stored-jwt')
    expect(o.token).toBeNull() // an API key in the URL wins over a dashboard login in this browser
    expect(overlaySocketParams(o)).toEqual({ api_key: 'k3y', username: 'alice', room: 'stream', role: 'listener', audio: '1' })
    expect(overlayOptions('?room=s&key=k2&username=a').apiKey).toBe('k2')
  })

  it('falls back to defaults for missing or absurd display values', () => {
    const o = overlayOptions('?room=s&font_size=abc&max_lines=-3&hold=')
    expect([o.fontSize, o.maxLines, o.holdMs, o.align]).toEqual([34, 1, 4000, 'center'])
    expect(overlayOptions('?font_size=9999').fontSize).toBe(200)
  })

  it('says what the URL still lacks', () => {
    expect(missingOption(overlayOptions('?token=t'))).toBe('room')
    expect(missingOption(overlayOptions('?room=bad name&token=t'))).toBe('room')
    expect(missingOption(overlayOptions('?room=s'))).toBe('credentials')
    expect(missingOption(overlayOptions('?room=s', 'stored-jwt'))).toBeNull()
    expect(missingOption(overlayOptions('?room=s&api_key=k'))).toBe('username')
    expect(missingOption(overlayOptions('?room=s&api_key=k&username=u'))).toBeNull()
  })
})

describe('captionText', () => {
  it('keeps the words and drops what is never spoken', () => {
    expect(captionText('[joy] Hello **there**! [wave] How are you?')).toBe('Hello there! How are you?')
    expect(captionText('See [1] and [the docs](https://x.y/z).')).toBe('See [1] and the docs.')
    expect(captionText('<think>plan it</think>Sure *smiles* thing.')).toBe('Sure thing.')
    expect(captionText('Code:\n```py\nprint(1)\n```\nDone')).toBe('Code:\n\nDone')
    expect(captionText('## Title\nText with `code`')).toBe('Title\nText with code')
  })

  it('hides an unfinished reasoning block or stage direction while it streams', () => {
    expect(captionText('Hi <think>still thin')).toBe('Hi')
    expect(captionText('Well *sigh')).toBe('Well')
  })
})

describe('OverlayCaptions', () => {
  it('shows the viewers being answered and the words as they stream, deltas over sentences', () => {
    const c = reactive(new OverlayCaptions())
    const viewers = [{ name: 'Mika', kind: 'danmaku', text: 'hello!', value: 0 }]
    const changed = play(c, [
      { t: 'state', data: { state: 'thinking' } },
      { t: 'user_msg', turn: 'V', data: { text: '[Live chat] Viewer "Mika" says: hello!', viewers } },
      { t: 'bot_delta_chunk', turn: 'V', data: { text: 'Hi ' } },
      { t: 'bot_delta_chunk', turn: 'V', data: { text: 'Mika!' } },
      { t: 'bot_text_chunk', turn: 'V', seq: 0, data: { text: 'Hi Mika!' } },
      { t: 'response', turn: 'V', seq: 0, data: 'UklGRg==' },
    ])
    expect(changed).toEqual([false, true, true, true, false, false])
    expect(c.viewers).toEqual(viewers)
    expect(c.user).toBe('') // the prompt given to the character is not shown
    expect(c.bot).toBe('Hi Mika!')
    expect(c.ended).toBe(false)
    c.apply({ t: 'end', turn: 'V', data: { interrupted: false, text: 'Hi Mika!' } })
    expect(c.ended).toBe(true)
    expect(c.bot).toBe('Hi Mika!')
  })

  it('shows the streamer’s own words, and sentences from a server that sends no deltas', () => {
    const c = new OverlayCaptions()
    play(c, [
      { t: 'user_msg', turn: 'S', data: { text: 'Tell the chat a joke' } },
      { t: 'bot_text_chunk', turn: 'S', seq: 0, data: { text: 'Why did the chicken cross the road? ' } },
      { t: 'bot_text_chunk', turn: 'S', seq: 1, data: { text: 'To get to the other side.' } },
    ])
    expect(c.user).toBe('Tell the chat a joke')
    expect(c.bot).toBe('Why did the chicken cross the road? To get to the other side.')
  })

  it('starts over for each turn and ignores the end of another one', () => {
    const c = new OverlayCaptions()
    play(c, [
      { t: 'user_msg', turn: 'A', data: { text: 'first' } },
      { t: 'bot_delta_chunk', turn: 'A', data: { text: 'One' } },
      { t: 'user_msg', turn: 'B', data: { text: 'second' } },
      { t: 'end', turn: 'A', data: { interrupted: true } },
    ])
    expect([c.turn, c.user, c.bot, c.ended]).toEqual(['B', 'second', '', false])
    // A turn that starts with text (no user_msg) gets a caption of its own.
    c.apply({ t: 'bot_delta_chunk', turn: 'C', data: { text: 'Hello everyone' } })
    expect([c.turn, c.user, c.bot]).toEqual(['C', '', 'Hello everyone'])
  })

  it('ends on stop_play and takes no more text of that turn', () => {
    const c = new OverlayCaptions()
    play(c, [
      { t: 'user_msg', turn: 'A', data: { text: 'q' } },
      { t: 'bot_delta_chunk', turn: 'A', data: { text: 'Once upon' } },
      { t: 'stop_play', turn: 'A' },
    ])
    expect([c.ended, c.interrupted]).toEqual([true, true])
    expect(c.apply({ t: 'bot_delta_chunk', turn: 'A', data: { text: ' a time' } })).toBe(false)
    expect(c.bot).toBe('Once upon')
  })

  it('uses the text of end or bot_msg when no words streamed (no TTS, no deltas)', () => {
    const c = new OverlayCaptions()
    c.apply({ t: 'user_msg', turn: 'A', data: { text: 'q' } })
    expect(c.apply({ t: 'end', turn: 'A', data: { interrupted: false, text: 'The whole answer.' } })).toBe(true)
    expect(c.bot).toBe('The whole answer.')
    c.apply({ t: 'user_msg', turn: 'B', data: { text: 'q2' } })
    c.apply({ t: 'bot_msg', turn: 'B', data: { text: '[joy] Sure!' } })
    expect([c.user, c.bot]).toEqual(['q2', 'Sure!'])
    c.clear()
    expect(c.empty).toBe(true)
  })
})
