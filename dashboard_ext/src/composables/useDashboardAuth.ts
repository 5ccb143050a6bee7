import { getCurrentScope, onScopeDispose, shallowRef } from 'vue'

export type LoginReason = 'missing' | 'rejected'

/** Why a login failed: wrong credentials, a second factor is needed, or the host said something else. */
export type LoginFailure = { reason: 'credentials' | 'totp' | 'unreachable' | 'refused'; message?: string }

type AuthStorage = Pick<Storage, 'getItem'> & Partial<Pick<Storage, 'setItem' | 'removeItem'>>

export interface DashboardAuthOptions {
  /** A token from the page URL, used instead of the dashboard's. */
  urlToken?: string | null
  /** @default window.localStorage */
  storage?: AuthStorage
  /** How often to look for a fresh dashboard login, in ms. @default 2000 */
  pollMs?: number
  /** The host's login API. @default '/api/v1/auth/login' */
  loginUrl?: string
  /** @default globalThis.fetch */
  fetch?: typeof fetch
}

/** The host's login answer (`POST /api/v1/auth/login`). */
interface LoginAnswer {
  status?: string
  message?: string | null
  data?: {
    token?: string
    username?: string
    totp_required?: boolean
    change_pwd_hint?: boolean
    md5_pwd_hint?: boolean
    password_upgrade_required?: boolean
  } | null
}

/**
 * The AstrBot dashboard's JWT, kept where the dashboard keeps it (`localStorage["token"]`, same
 * origin), so the page and the dashboard share one login. Without a token, or after the server
 * rejected it, `needsLogin` is set: the page's own form logs in through the host's login API,
 * and storage is polled too, for a login in a dashboard tab.
 */
export function useDashboardAuth(opts: DashboardAuthOptions = {}) {
  const storage = opts.storage ?? (globalThis.localStorage as AuthStorage | undefined)
  const doFetch = opts.fetch ?? ((...args: Parameters<typeof fetch>) => globalThis.fetch(...args))
  const read = (): string | null => {
    try {
      return storage?.getItem('token') || null
    } catch {
      return null
    }
  }

  function readFlag(key: string): boolean {
    try {
      return storage?.getItem(key) === 'true'
    } catch {
      return false
    }
  }

  const token = shallowRef<string | null>(opts.urlToken || read())
  const needsLogin = shallowRef<LoginReason | null>(token.value ? null : 'missing')
  const loggingIn = shallowRef(false)
  /** The host asks for a new password (a generated or default one): the dashboard's setup page does it. */
  const passwordChangeAsked = shallowRef(readFlag('change_pwd_hint'))
  let rejected: string | null = null
  let timer: ReturnType<typeof setInterval> | null = null

  function accept(fresh: string): void {
    token.value = fresh
    needsLogin.value = null
    stopPolling()
  }

  function check(): void {
    const fresh = read()
    if (fresh && fresh !== rejected) accept(fresh)
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

  /** Store a login the way the dashboard does, hints included (so it still asks for a new password). */
  function remember(data: NonNullable<LoginAnswer['data']>, username: string): void {
    const upgrade = !!data.password_upgrade_required
    const md5 = !!data.md5_pwd_hint && !upgrade
    const flags: Record<string, boolean> = {
      change_pwd_hint: !!data.change_pwd_hint || md5,
      md5_pwd_hint: md5,
      password_upgrade_required: upgrade,
    }
    passwordChangeAsked.value = flags.change_pwd_hint
    try {
      storage?.setItem?.('user', data.username || username)
      storage?.setItem?.('token', data.token as string)
      for (const [key, on] of Object.entries(flags)) {
        if (on) storage?.setItem?.(key, 'true')
        else storage?.removeItem?.(key)
      }
    } catch {
      // storage disabled: the login still holds for this page
    }
  }

  /** Log in through the host's login API; on success the token is used and shared with the dashboard. */
  async function login(username: string, password: string, code?: string): Promise<LoginFailure | null> {
    loggingIn.value = true
    try {
      let res: Response
      try {
        res = await doFetch(opts.loginUrl ?? '/api/v1/auth/login', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          credentials: 'same-origin',
          body: JSON.stringify(code ? { username, password, code } : { username, password }),
        })
      } catch (err) {
        return { reason: 'unreachable', message: String(err) }
      }
      let answer: LoginAnswer = {}
      try {
        answer = (await res.json()) as LoginAnswer
      } catch {
        return { reason: 'refused', message: `HTTP ${res.status}` }
      }
      if (answer.data?.totp_required) return { reason: 'totp', message: answer.message ?? undefined }
      if (answer.status === 'ok' && answer.data?.token) {
        remember(answer.data, username)
        rejected = null
        accept(answer.data.token)
        return null
      }
      if (res.status === 401) return { reason: 'credentials', message: answer.message ?? undefined }
      return { reason: 'refused', message: answer.message || `HTTP ${res.status}` }
    } finally {
      loggingIn.value = false
    }
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

  return { token, needsLogin, loggingIn, passwordChangeAsked, reject, check, login }
}

export type DashboardAuth = ReturnType<typeof useDashboardAuth>
