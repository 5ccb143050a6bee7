import { getCurrentScope, onScopeDispose, shallowRef } from 'vue'

export type LoginReason = 'missing' | 'rejected'

export interface DashboardAuthOptions {
  /** A token from the page URL, used instead of the dashboard's. */
  urlToken?: string | null
  /** @default window.localStorage */
  storage?: Pick<Storage, 'getItem'>
  /** How often to look for a fresh dashboard login, in ms. @default 2000 */
  pollMs?: number
}

/**
 * The AstrBot dashboard's JWT, read from its `localStorage["token"]` (same origin).
 * When there is none, or the server rejected it, `needsLogin` is set and storage is polled
 * until a different token appears (the user logged in to the dashboard in another tab).
 */
export function useDashboardAuth(opts: DashboardAuthOptions = {}) {
  const storage = opts.storage ?? globalThis.localStorage
  const read = (): string | null => {
    try {
      return storage?.getItem('token') || null
    } catch {
      return null
    }
  }

  const token = shallowRef<string | null>(opts.urlToken || read())
  const needsLogin = shallowRef<LoginReason | null>(token.value ? null : 'missing')
  let rejected: string | null = null
  let timer: ReturnType<typeof setInterval> | null = null

  function check(): void {
    const fresh = read()
    if (!fresh || fresh === rejected) return
    token.value = fresh
    needsLogin.value = null
    stopPolling()
  }

  function startPolling(): void {
    if (timer === null) timer = setInterval(check, opts.pollMs ?? 2000)
  }

  function stopPolling(): void {
    if (timer !== null) clearInterval(timer)
    timer = null
  }

  /** The server refused the current token: wait for a new login. */
  function reject(): void {
    rejected = token.value
    token.value = null
    needsLogin.value = 'rejected'
    startPolling()
  }

  const onStorage = (ev: StorageEvent) => {
    if (needsLogin.value && ev.key === 'token') check()
  }
  if (needsLogin.value) startPolling()
  if (typeof window !== 'undefined') window.addEventListener('storage', onStorage)
  if (getCurrentScope()) onScopeDispose(() => {
    stopPolling()
    if (typeof window !== 'undefined') window.removeEventListener('storage', onStorage)
  })

  return { token, needsLogin, reject, check }
}
