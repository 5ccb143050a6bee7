import { describe, expect, it } from 'vitest'
import { historyMessages, historyUrl, markdownLinksAsText } from '../src/lib/history'

describe('history', () => {
  it("reads the host's chat history rows as transcript lines, oldest first", () => {
    const body = {
      status: 'ok',
      data: {
        session: { session_id: 'c1' },
        history: [
          { content: { type: 'user', message: [{ type: 'plain', text: 'hi' }], live: true }, created_at: '2026-12-03T10:00:00+00:00' },
          { content: { type: 'bot', message: [{ type: 'plain', text: 'Hello' }, { type: 'image', attachment_id: 'a' }] } },
          { content: { type: 'bot', message: [{ type: 'plain', text: 'Once upon…' }], interrupted: true } },
          { content: { type: 'bot', message: [] } }, // nothing to show
          { content: { type: 'system', message: 'x' } },
          { content: null },
        ],
      },
    }
    const lines = historyMessages(body)
    expect(lines.map((m) => [m.role, m.text, m.interrupted])).toEqual([
      ['user', 'hi', false],
      ['bot', 'Hello [image]', false],
      ['bot', 'Once upon…', true],
    ])
    expect(lines[0].ts).toBe(Date.parse('2026-12-03T10:00:00Z'))
  })

  it("shows a markdown link as its label: the WebChat `/live` command's reply", () => {
    const reply = '🎙️ Live Mode for this conversation: [/live/?conversation_id=c1](/live/?conversation_id=c1)'
    const body = {
      status: 'ok',
      data: {
        history: [
          { content: { type: 'user', message: [{ type: 'plain', text: '/live' }] } },
          { content: { type: 'bot', message: [{ type: 'plain', text: reply }] } },
          { content: { type: 'bot', message: 'see [the docs](https://x.test/a)' } },
        ],
      },
    }
    expect(historyMessages(body).map((m) => m.text)).toEqual([
      '/live',
      '🎙️ Live Mode for this conversation: /live/?conversation_id=c1',
      'see the docs',
    ])
  })

  it('reads markdown links, images and titles as plain text, leaving everything else as written', () => {
    expect(markdownLinksAsText('[a](u) and [b](v)')).toBe('a and b')
    expect(markdownLinksAsText('![a cat](/c.png)')).toBe('a cat')
    expect(markdownLinksAsText('[Foo](https://w.test/Foo_(bar)) done')).toBe('Foo done')
    expect(markdownLinksAsText('[label](/x "a title")')).toBe('label')
    expect(markdownLinksAsText('[](/only/url)')).toBe('/only/url')
    // Not links: kept as they are, and markup stays text (the transcript never renders HTML).
    expect(markdownLinksAsText('[1] (see below)')).toBe('[1] (see below)')
    expect(markdownLinksAsText('f(x) = [a, b]')).toBe('f(x) = [a, b]')
    expect(markdownLinksAsText('[<b>x</b>](javascript:alert(1))')).toBe('<b>x</b>')
  })

  it('an error answer or an unexpected shape gives no lines', () => {
    expect(historyMessages({ status: 'error', message: 'Permission denied' })).toEqual([])
    expect(historyMessages(null)).toEqual([])
    expect(historyMessages({ status: 'ok', data: {} })).toEqual([])
  })

  it('asks for the newest page of the conversation at the page prefix', () => {
    expect(historyUrl('', 'a b')).toBe('/api/v1/chat/sessions/a%20b?page_size=100')
    expect(historyUrl('/astrbot', 'c1')).toBe('/astrbot/api/v1/chat/sessions/c1?page_size=100')
  })
})
