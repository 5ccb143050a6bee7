import { getCurrentScope, onScopeDispose, shallowRef, watch } from 'vue'
import type { FrameHandlers } from '../lib/frames'
import { asServerFrame, CLOSE_POLICY_VIOLATION, UNAUTHORIZED, type ClientFrame, type ServerFrame } from '../lib/protocol'
import { record } from '../lib/testLog'
import { liveSocketUrl } from '../lib/urls'
import type { DashboardAuth } from './useDashboardAuth'
import { useLiveSocket, type CloseInfo, type WebSocketCtor } from './useLiveSocket'

/** The server refused the session for a reason a new login does not fix. */
export interface FatalError {
  code: string
  message: string
}

const PING_MS = 15000

export interface LiveConnectionOptions {
  location: Pick<Location, 'protocol' | 'host' | 'pathname'>
  auth: DashboardAuth
  /** Query parameters of the socket besides the token (conversation or room); read on each connect. */
  params: () => Record<string, string | null | undefined>
  /** Every parsed server frame. */
  onFrame: (frame: ServerFrame) => void
  onOpen?: () => void
  onClose?: (info: CloseInfo) => void
  WebSocketImpl?: WebSocketCtor
}

/**
 * The Live socket with its login: connects once there is a token, reconnects after drops,
 * stops on a refusal (close 1008 after an `error` frame): a refused token asks for a new
 * login, any other refusal is `fatal` until `retry()`. Also measures the round trip (ping).
 */
export function useLiveConnection(opts: LiveConnectionOptions) {
  const { auth } = opts
  const rttMs = shallowRef<number | null>(null)
  const fatal = shallowRef<FatalError | null>(null)
  /** The last error frame of this connection: it says why a 1008 close came. */
  let lastError: FatalError | null = null

  const socket = useLiveSocket(url, {
    onOpen,
    onMessage,
    onClose,
    shouldReconnect,
    WebSocketImpl: opts.WebSocketImpl,
  })

  function url(): string | null {
    const token = auth.token.value
    return token ? liveSocketUrl(opts.location, { token, ...opts.params() }) : null
  }

  function send(frame: ClientFrame): boolean {
    const ok = socket.send(frame)
    record('sent', { t: frame.t, turn: 'turn' in frame ? frame.turn : undefined, ok })
    return ok
  }

  function onOpen(): void {
    record('open')
    lastError = null
    fatal.value = null
    opts.onOpen?.()
  }

  function onMessage(raw: unknown): void {
    const frame = asServerFrame(raw)
    if (!frame) return
    record('frame', { t: frame.t, turn: 'turn' in frame ? frame.turn : undefined, seq: 'seq' in frame ? frame.seq : undefined })
    opts.onFrame(frame)
  }

  function onClose(info: CloseInfo): void {
    record('close', { code: info.code, reason: info.reason })
    rttMs.value = null
    opts.onClose?.(info)
  }

  function shouldReconnect(info: CloseInfo): boolean {
    if (info.code !== CLOSE_POLICY_VIOLATION) return true
    // Only a refused credential calls for a new login; other refusals need the user to act.
    if (!lastError || lastError.code === UNAUTHORIZED) auth.reject()
    else fatal.value = lastError
    return false
  }

  /** The frames that concern the connection itself. */
  const frameHandlers: FrameHandlers = {
    pong: (f) => {
      if (typeof f.data === 'number') rttMs.value = Math.round(performance.now() - f.data)
    },
    error: (f) => {
      if (!f.code) return
      lastError = { code: f.code, message: f.data ?? f.code }
      if (f.code === UNAUTHORIZED) {
        auth.reject()
        socket.close()
      }
    },
  }

  /** (Re)connect now, e.g. after the conversation or room changed, or after a fatal refusal. */
  function open(): void {
    fatal.value = null
    socket.open()
  }

  watch(
    auth.token,
    (token, old) => {
      if (token && token !== old) socket.open()
    },
    { flush: 'sync' },
  )
  const ping = setInterval(() => {
    if (socket.status.value === 'open') send({ t: 'ping', data: Math.round(performance.now()) })
  }, PING_MS)
  if (getCurrentScope()) onScopeDispose(() => clearInterval(ping))

  return { socket, status: socket.status, send, open, rttMs, fatal, frameHandlers }
}

export type LiveConnection = ReturnType<typeof useLiveConnection>
