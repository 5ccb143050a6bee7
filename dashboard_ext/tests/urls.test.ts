import { describe, expect, it } from 'vitest'
import { dashboardUrl, liveSocketUrl, loginUrl, pageParams, pathPrefix } from '../src/lib/urls'

const loc = (href: string) => {
  const u = new URL(href)
  return { protocol: u.protocol, host: u.host, pathname: u.pathname, search: u.search }
}

describe('urls', () => {
  it('finds the reverse-proxy prefix before /live/', () => {
    expect(pathPrefix('/live/')).toBe('')
    expect(pathPrefix('/live')).toBe('')
    expect(pathPrefix('/live/index.html')).toBe('')
    expect(pathPrefix('/astrbot/live/')).toBe('/astrbot')
    expect(pathPrefix('/a/b/live/x')).toBe('/a/b')
  })

  it('builds the socket URL on the same host, wss under https', () => {
    expect(liveSocketUrl(loc('http://127.0.0.1:6185/live/'), { token: 'j.w.t', conversation_id: 'c1', room: null })).toBe(
      'ws://127.0.0.1:6185/api/v1/live/ws?token=j.w.t&conversation_id=c1',
    )
    expect(liveSocketUrl(loc('https://bot.example/proxy/live/?room=r'), { token: 'a b', room: 'r' })).toBe(
      'wss://bot.example/proxy/api/v1/live/ws?token=a+b&room=r',
    )
  })

  it('points at the dashboard login under the same prefix', () => {
    expect(loginUrl(loc('http://localhost:6185/live/'))).toBe('http://localhost:6185/#/auth/login')
    expect(dashboardUrl(loc('https://h/p/live/'))).toBe('https://h/p/')
  })

  it('reads the page parameters that pass through to the socket', () => {
    expect(pageParams('?conversation_id=abc&room=stage&x=1')).toEqual({ token: null, conversation_id: 'abc', room: 'stage' })
  })
})
