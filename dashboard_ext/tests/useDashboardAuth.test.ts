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
})
