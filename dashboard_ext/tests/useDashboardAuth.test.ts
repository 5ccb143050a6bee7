import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { effectScope } from 'vue'
import { useDashboardAuth } from '../src/composables/useDashboardAuth'

let store: Record<string, string>
const storage = { getItem: (k: string) => store[k] ?? null }

beforeEach(() => {
  store = {}
  vi.useFakeTimers()
})
afterEach(() => vi.useRealTimers())

const make = (urlToken?: string) => effectScope().run(() => useDashboardAuth({ storage, urlToken }))!

describe('useDashboardAuth', () => {
  it("uses the dashboard's token from localStorage", () => {
    store.token = 'dash'
    const auth = make()
    expect(auth.token.value).toBe('dash')
    expect(auth.needsLogin.value).toBeNull()
  })

  it('prefers a token given in the page URL', () => {
    store.token = 'dash'
    expect(make('from-url').token.value).toBe('from-url')
  })

  it('without a token, asks for a login and continues once one appears', () => {
    const auth = make()
    expect(auth.needsLogin.value).toBe('missing')
    vi.advanceTimersByTime(2000)
    expect(auth.token.value).toBeNull()
    store.token = 'fresh'
    vi.advanceTimersByTime(2000)
    expect(auth.token.value).toBe('fresh')
    expect(auth.needsLogin.value).toBeNull()
  })

  it('after a rejection, waits for a different token than the refused one', () => {
    store.token = 'old'
    const auth = make()
    auth.reject()
    expect(auth.needsLogin.value).toBe('rejected')
    expect(auth.token.value).toBeNull()
    vi.advanceTimersByTime(10000)
    expect(auth.token.value).toBeNull()
    store.token = 'new'
    vi.advanceTimersByTime(2000)
    expect(auth.token.value).toBe('new')
  })

  describe('login()', () => {
    const answer = (body: unknown, status = 200) => async () => ({ status, json: async () => body }) as Response
    const withFetch = (fetch: typeof globalThis.fetch) => {
      const writable = { ...storage, setItem: (k: string, v: string) => void (store[k] = v), removeItem: (k: string) => void delete store[k] }
      return effectScope().run(() => useDashboardAuth({ storage: writable, fetch, loginUrl: '/p/api/v1/auth/login' }))!
    }

    it('stores the token, the user and the password hints the way the dashboard does', async () => {
      store.md5_pwd_hint = 'true'
      const calls: [string, RequestInit | undefined][] = []
      const auth = withFetch((async (url: string, init?: RequestInit) => {
        calls.push([url, init])
        return answer({ status: 'ok', data: { token: 'T', username: 'astrbot', change_pwd_hint: true } })()
      }) as typeof fetch)
      expect(await auth.login('astrbot', 'Pw-12345')).toBeNull()
      expect(calls[0][0]).toBe('/p/api/v1/auth/login')
      expect(JSON.parse(String(calls[0][1]?.body))).toEqual({ username: 'astrbot', password: 'Pw-12345' })
      expect(store).toMatchObject({ token: 'T', user: 'astrbot', change_pwd_hint: 'true' })
      expect(store.md5_pwd_hint).toBeUndefined()
      expect(auth.token.value).toBe('T')
      expect(auth.needsLogin.value).toBeNull()
      expect(auth.passwordChangeAsked.value).toBe(true) // the page points to the dashboard, which does it
    })

    it('asks for the second factor, then sends it', async () => {
      const bodies: unknown[] = []
      const auth = withFetch((async (_: string, init?: RequestInit) => {
        const body = JSON.parse(String(init?.body))
        bodies.push(body)
        return body.code === '123456'
          ? answer({ status: 'ok', data: { token: 'T2' } })()
          : answer({ status: 'error', message: '需要 TOTP 验证', data: { totp_required: true } }, 401)()
      }) as typeof fetch)
      expect(await auth.login('astrbot', 'pw')).toMatchObject({ reason: 'totp' })
      expect(auth.token.value).toBeNull()
      expect(await auth.login('astrbot', 'pw', '123456')).toBeNull()
      expect(bodies[1]).toEqual({ username: 'astrbot', password: 'pw', code: '123456' })
      expect(auth.token.value).toBe('T2')
    })

    it('tells wrong credentials, an unreachable host and other refusals apart', async () => {
      expect(await withFetch(answer({ status: 'error', message: '用户名或密码错误' }, 401) as typeof fetch).login('a', 'b')).toMatchObject({
        reason: 'credentials',
      })
      const down = withFetch((async () => {
        throw new TypeError('Failed to fetch')
      }) as typeof fetch)
      expect(await down.login('a', 'b')).toMatchObject({ reason: 'unreachable' })
      expect(await withFetch(answer({ status: 'error', message: 'Too many requests' }, 429) as typeof fetch).login('a', 'b')).toEqual({
        reason: 'refused',
        message: 'Too many requests',
      })
      expect(store.token).toBeUndefined()
    })
  })
})
