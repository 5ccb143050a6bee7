import { describe, expect, it } from 'vitest'
import { historyMessages, historyUrl } from '../src/lib/history'

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
