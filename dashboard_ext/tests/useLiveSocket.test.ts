import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { effectScope, shallowRef } from 'vue'
import { useLiveSocket, type LiveSocketOptions } from '../src/composables/useLiveSocket'
import { FakeWebSocket } from './fakes'

function make(url: string | null | (() => string | null) = 'ws://h/api/v1/live/ws?token=x', opts: LiveSocketOptions = {}) {
  const scope = effectScope()
  const sock = scope.run(() =>
    useLiveSocket(url, { WebSocketImpl: FakeWebSocket as never, random: () => 0.5, ...opts }),
  )!
  return { scope, sock }
}

beforeEach(() => {
  FakeWebSocket.reset()
  vi.useFakeTimers()
})
afterEach(() => vi.useRealTimers())

describe('useLiveSocket', () => {
  it('connects, parses JSON text frames and passes binary frames through', () => {
    const onMessage = vi.fn()
    const onBinary = vi.fn()
    const { sock } = make(undefined, { onMessage, onBinary })
    expect(sock.status.value).toBe('connecting')
    const ws = FakeWebSocket.last
    expect(ws.url).toBe('ws://h/api/v1/live/ws?token=x')
    expect(ws.binaryType).toBe('arraybuffer')
    ws.open()
    expect(sock.status.value).toBe('open')
    ws.receive({ t: 'hello', data: { version: 1 } })
    expect(onMessage).toHaveBeenCalledWith({ t: 'hello', data: { version: 1 } })
    const buf = new ArrayBuffer(4)
    ws.receive(buf)
    expect(onBinary).toHaveBeenCalledWith(buf)
    ws.receive('not json{')
    expect(sock.lastError.value).toBe('unparsable text frame')
  })

  it('sends JSON as text and audio as binary, only while open', () => {
    const { sock } = make()
    const ws = FakeWebSocket.last
    expect(sock.send({ t: 'ping' })).toBe(false)
    ws.open()
    const pcm = new Int16Array([1, 2, 3])
    expect(sock.send({ t: 'text_input', text: 'hi' })).toBe(true)
    expect(sock.send(pcm.buffer)).toBe(true)
    expect(sock.send(pcm)).toBe(true)
    expect(ws.sent[0]).toBe('{"t":"text_input","text":"hi"}')
    expect(ws.sent[1]).toBeInstanceOf(ArrayBuffer)
    expect(ws.sent[2]).toBe(pcm)
  })

  it('reconnects with exponential backoff from 0.5 s up to 10 s', () => {
    const { sock } = make()
    const delays: number[] = []
    for (let i = 0; i < 7; i++) {
      FakeWebSocket.last.drop(1006)
      expect(sock.status.value).toBe('reconnecting')
      delays.push(sock.retryInMs.value!)
      const count = FakeWebSocket.instances.length
      vi.advanceTimersByTime(sock.retryInMs.value! - 1)
      expect(FakeWebSocket.instances.length).toBe(count)
      vi.advanceTimersByTime(1)
      expect(FakeWebSocket.instances.length).toBe(count + 1)
    }
    expect(delays).toEqual([500, 1000, 2000, 4000, 8000, 10000, 10000])
  })

  it('spreads delays with jitter but never beyond the maximum', () => {
    const low = make(undefined, { random: () => 0 }).sock
    FakeWebSocket.last.drop()
    expect(low.retryInMs.value).toBe(375)
    const high = make(undefined, { random: () => 1, maxDelayMs: 600 }).sock
    FakeWebSocket.last.drop()
    expect(high.retryInMs.value).toBe(600)
  })

  it('resets the backoff once a connection delivers a message', () => {
    const { sock } = make()
    FakeWebSocket.last.drop()
    vi.advanceTimersByTime(500)
    FakeWebSocket.last.drop()
    expect(sock.retryInMs.value).toBe(1000)
    vi.advanceTimersByTime(1000)
    FakeWebSocket.last.open()
    FakeWebSocket.last.receive({ t: 'hello' })
    FakeWebSocket.last.drop()
    expect(sock.retryInMs.value).toBe(500)
  })

  it('comes back quickly after a server restart (1012), even deep into the backoff', () => {
    const { sock } = make()
    for (let i = 0; i < 4; i++) {
      FakeWebSocket.last.drop()
      vi.advanceTimersByTime(sock.retryInMs.value!)
    }
    FakeWebSocket.last.drop() // the fifth failure in a row: the next try would be in 8 s
    expect(sock.retryInMs.value).toBe(8000)
    vi.advanceTimersByTime(8000)
    FakeWebSocket.last.open()
    FakeWebSocket.last.drop(1012, 'plugin reloading')
    expect(sock.status.value).toBe('reconnecting')
    expect(sock.retryInMs.value).toBe(500)
    vi.advanceTimersByTime(500)
    FakeWebSocket.last.drop(1006) // still restarting: the backoff grows from the start again
    expect(sock.retryInMs.value).toBe(1000)
  })

  it('lets the caller stretch the delay for a given close', () => {
    const reconnectDelay = vi.fn((info: { code: number }, backoff: number) => (info.code === 1008 ? 15000 : backoff))
    const { sock } = make(undefined, { reconnectDelay })
    FakeWebSocket.last.open()
    FakeWebSocket.last.receive({ t: 'error', code: 'UNAUTHORIZED' })
    FakeWebSocket.last.drop(1008)
    expect(reconnectDelay).toHaveBeenCalledWith({ code: 1008, reason: '', wasOpen: true }, 500)
    expect(sock.retryInMs.value).toBe(15000)
    vi.advanceTimersByTime(14999)
    expect(FakeWebSocket.instances.length).toBe(1)
    vi.advanceTimersByTime(1)
    expect(FakeWebSocket.instances.length).toBe(2)
    FakeWebSocket.last.drop(1006)
    expect(sock.retryInMs.value).toBe(1000)
  })

  it('does not reconnect after a deliberate close', () => {
    const onClose = vi.fn()
    const { sock } = make(undefined, { onClose })
    const ws = FakeWebSocket.last
    ws.open()
    sock.close()
    expect(ws.closedWith).toEqual({ code: 1000, reason: '' })
    expect(sock.status.value).toBe('closed')
    ws.drop(1000) // the close handshake completing later is ignored
    vi.advanceTimersByTime(60000)
    expect(FakeWebSocket.instances.length).toBe(1)
    expect(onClose).not.toHaveBeenCalled()
  })

  it('stays closed when shouldReconnect refuses (auth failure)', () => {
    const shouldReconnect = vi.fn((info: { code: number }) => info.code !== 1008)
    const { sock } = make(undefined, { shouldReconnect })
    FakeWebSocket.last.open()
    FakeWebSocket.last.drop(1008, 'unauthorized')
    expect(shouldReconnect).toHaveBeenCalledWith({ code: 1008, reason: 'unauthorized', wasOpen: true })
    expect(sock.status.value).toBe('closed')
    expect(sock.lastError.value).toBe('unauthorized')
    vi.advanceTimersByTime(60000)
    expect(FakeWebSocket.instances.length).toBe(1)
  })

  it('ignores every event of a socket it has replaced', () => {
    const onMessage = vi.fn()
    const onClose = vi.fn()
    const { sock } = make(undefined, { onMessage, onClose })
    const old = FakeWebSocket.last
    old.open()
    sock.open() // reconnect now: a new socket replaces the old one
    const fresh = FakeWebSocket.last
    expect(fresh).not.toBe(old)
    expect(old.closedWith?.code).toBe(1000)
    old.receive({ t: 'state' })
    old.drop(1006)
    expect(onMessage).not.toHaveBeenCalled()
    expect(onClose).not.toHaveBeenCalled()
    expect(sock.status.value).toBe('connecting')
    vi.advanceTimersByTime(60000)
    expect(FakeWebSocket.instances.length).toBe(2)
    fresh.open()
    fresh.receive({ t: 'state' })
    expect(onMessage).toHaveBeenCalledTimes(1)
  })

  it('cancels a pending retry when opened or closed explicitly', () => {
    const { sock } = make()
    FakeWebSocket.last.drop()
    sock.close()
    vi.advanceTimersByTime(60000)
    expect(FakeWebSocket.instances.length).toBe(1)
    sock.open()
    expect(FakeWebSocket.instances.length).toBe(2)
    expect(sock.status.value).toBe('connecting')
  })

  it('waits idle without a URL and reads the URL again on every attempt', () => {
    const url = shallowRef<string | null>(null)
    const { sock } = make(() => url.value)
    expect(sock.status.value).toBe('idle')
    expect(FakeWebSocket.instances.length).toBe(0)
    url.value = 'ws://h/a?conversation_id=1'
    sock.open()
    expect(FakeWebSocket.last.url).toBe('ws://h/a?conversation_id=1')
    url.value = 'ws://h/a?conversation_id=2'
    FakeWebSocket.last.drop()
    vi.advanceTimersByTime(500)
    expect(FakeWebSocket.last.url).toBe('ws://h/a?conversation_id=2')
  })

  it('closes the socket when its effect scope is disposed', () => {
    const { scope } = make()
    const ws = FakeWebSocket.last
    ws.open()
    scope.stop()
    expect(ws.closedWith?.code).toBe(1000)
    vi.advanceTimersByTime(60000)
    expect(FakeWebSocket.instances.length).toBe(1)
  })
})
