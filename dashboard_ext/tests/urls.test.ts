import { describe, expect, it } from 'vitest'
import { dashboardUrl, liveSocketUrl, loginUrl, overlayUrl, pageParams, pathPrefix } from '../src/lib/urls'

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
    expect(pathPrefix('/live/overlay')).toBe('')
    expect(pathPrefix('/astrbot/live/overlay')).toBe('/astrbot')
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
    expect(pageParams('?conversation_id=abc&room=stage&x=1')).toEqual({
      token: null,
      conversation_id: 'abc',
      room: 'stage',
      embed: null,
    })
    expect(pageParams('?embed=webchat').embed).toBe('webchat')
    expect(pageParams('?embed=other').embed).toBeNull()
  })

  it('builds the OBS overlay URL of a room next to the page, with a JWT or an API key', () => {
    expect(overlayUrl(loc('http://127.0.0.1:6185/live/?room=stream'), { room: 'stream', token: 'j.w.t' })).toBe(
      'http://127.0.0.1:6185/live/overlay?room=stream&token=j.w.t',
    )
    expect(
      overlayUrl(loc('https://h/p/live/'), { room: 'my.room', api_key: 'abc+/=', username: '小明', audio: true }),
    ).toBe('https://h/p/live/overlay?room=my.room&api_key=abc%2B%2F%3D&username=%E5%B0%8F%E6%98%8E&audio=1')
  })
})
