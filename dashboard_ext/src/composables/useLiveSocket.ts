import { getCurrentScope, onScopeDispose, shallowRef, toValue, type MaybeRefOrGetter } from 'vue'

export type SocketStatus = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed'

export interface CloseInfo {
  code: number
  reason: string
  /** Whether this socket had reached `open` before it closed. */
  wasOpen: boolean
}

/** The part of the WebSocket constructor this composable needs (a fake can stand in for tests). */
export type WebSocketLike = Pick<WebSocket, 'readyState' | 'send' | 'close' | 'binaryType'> & {
  onopen: ((ev: Event) => void) | null
  onmessage: ((ev: MessageEvent) => void) | null
  onclose: ((ev: CloseEvent) => void) | null
  onerror: ((ev: Event) => void) | null
}
export type WebSocketCtor = new (url: string) => WebSocketLike

export interface LiveSocketOptions {
  /** @default globalThis.WebSocket */
  WebSocketImpl?: WebSocketCtor
  /** First reconnect delay in ms. @default 500 */
  minDelayMs?: number
  /** Longest reconnect delay in ms. @default 10000 */
  maxDelayMs?: number
  /** Random spread of each delay, as a fraction (0.25 = ±25 %). @default 0.25 */
  jitter?: number
  /** @default Math.random */
  random?: () => number
  /** Connect as soon as the URL is known. @default true */
  autoConnect?: boolean
  onOpen?: () => void
  /** Parsed JSON of each text frame. */
  onMessage?: (data: unknown) => void
  onBinary?: (data: ArrayBuffer) => void
  onClose?: (info: CloseInfo) => void
  /** Return false to stay closed after this close (e.g. an auth failure). @default () => true */
  shouldReconnect?: (info: CloseInfo) => boolean
  /** Adjust the delay before reconnecting after `info` (`backoffMs` is the usual one). */
  reconnectDelay?: (info: CloseInfo, backoffMs: number) => number
}

const OPEN = 1
/** The server is restarting (the plugin reloads after a settings save): it is back in a moment. */
export const CLOSE_SERVICE_RESTART = 1012

/**
 * A WebSocket that reconnects with exponential backoff after drops (not after `close()`
 * or when `shouldReconnect` says no). Callbacks from a replaced socket are ignored.
 */
export function useLiveSocket(url: MaybeRefOrGetter<string | null>, opts: LiveSocketOptions = {}) {
  const Impl = opts.WebSocketImpl ?? (globalThis.WebSocket as unknown as WebSocketCtor)
  const minDelay = opts.minDelayMs ?? 500
  const maxDelay = opts.maxDelayMs ?? 10000
  const jitter = opts.jitter ?? 0.25
  const random = opts.random ?? Math.random

  const status = shallowRef<SocketStatus>('idle')
  const lastError = shallowRef<string | null>(null)
  /** Consecutive failed attempts; reset by the first message of a connection. */
  const attempts = shallowRef(0)
  /** Delay of the pending reconnect in ms, or null. */
  const retryInMs = shallowRef<number | null>(null)

  let ws: WebSocketLike | null = null
  let timer: ReturnType<typeof setTimeout> | null = null
  let explicitlyClosed = false

  function clearTimer(): void {
    if (timer !== null) clearTimeout(timer)
    timer = null
    retryInMs.value = null
  }

  function backoffDelay(attempt: number): number {
    const base = Math.min(maxDelay, minDelay * 2 ** attempt)
    const spread = 1 - jitter + 2 * jitter * random()
    return Math.round(Math.min(maxDelay, base * spread))
  }

  function connect(): void {
    clearTimer()
    const target = toValue(url)
    if (!target) {
      status.value = 'idle'
      return
    }
    status.value = 'connecting'
    let socket: WebSocketLike
    try {
      socket = new Impl(target)
    } catch (err) {
      lastError.value = String(err)
      scheduleReconnect()
      return
    }
    socket.binaryType = 'arraybuffer'
    ws = socket
    let wasOpen = false
    let gotMessage = false
    socket.onopen = () => {
      if (ws !== socket) return
      wasOpen = true
      status.value = 'open'
      lastError.value = null
      opts.onOpen?.()
    }
    socket.onmessage = (ev) => {
      if (ws !== socket) return
      if (!gotMessage) {
        gotMessage = true
        attempts.value = 0
      }
      if (typeof ev.data === 'string') {
        let parsed: unknown
        try {
          parsed = JSON.parse(ev.data)
        } catch {
          lastError.value = 'unparsable text frame'
          return
        }
        opts.onMessage?.(parsed)
      } else if (ev.data instanceof ArrayBuffer) {
        opts.onBinary?.(ev.data)
      }
    }
    socket.onerror = () => {
      if (ws === socket) lastError.value = 'connection error'
    }
    socket.onclose = (ev) => {
      if (ws !== socket) return
      ws = null
      const info: CloseInfo = { code: ev.code, reason: ev.reason, wasOpen }
      if (ev.code !== 1000 && ev.reason) lastError.value = ev.reason
      opts.onClose?.(info)
      if (explicitlyClosed || !(opts.shouldReconnect?.(info) ?? true)) status.value = 'closed'
      else scheduleReconnect(info)
    }
  }

  function scheduleReconnect(info?: CloseInfo): void {
    // A restart is not a failure of ours: start the backoff over, so the first retry comes quickly.
    if (info?.code === CLOSE_SERVICE_RESTART) attempts.value = 0
    const backoff = backoffDelay(attempts.value)
    const delay = info && opts.reconnectDelay ? opts.reconnectDelay(info, backoff) : backoff
    attempts.value += 1
    status.value = 'reconnecting'
    retryInMs.value = delay
    timer = setTimeout(() => {
      timer = null
      if (!explicitlyClosed) connect()
    }, delay)
  }

  /** Send JSON (objects) or binary (ArrayBuffer / typed array). Returns false when not open. */
  function send(data: object | ArrayBuffer | ArrayBufferView): boolean {
    if (!ws || ws.readyState !== OPEN) return false
    const payload = data instanceof ArrayBuffer || ArrayBuffer.isView(data) ? data : JSON.stringify(data)
    ws.send(payload as string | ArrayBuffer)
    return true
  }

  /** (Re)connect now, dropping the current socket and any pending retry. */
  function open(): void {
    explicitlyClosed = false
    const old = ws
    ws = null
    old?.close(1000)
    attempts.value = 0
    connect()
  }

  /** Close deliberately: no reconnect until open() is called. */
  function close(code = 1000, reason = ''): void {
    explicitlyClosed = true
    clearTimer()
    const old = ws
    ws = null
    try {
      old?.close(code, reason)
    } catch {
      old?.close() // browsers only accept 1000 and 3000-4999 from scripts
    }
    status.value = 'closed'
  }

  if (opts.autoConnect ?? true) connect()
  if (getCurrentScope()) onScopeDispose(() => close())

  return { status, lastError, attempts, retryInMs, send, open, close }
}

export type LiveSocket = ReturnType<typeof useLiveSocket>
