import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { effectScope } from 'vue'
import { encodeWavPcm16 } from '../src/audio/wav'
import { useOverlay } from '../src/composables/useOverlay'
import { liveTest } from '../src/lib/testLog'
import { FakeAudioContext, FakeWebSocket, flush, toBase64 } from './fakes'

const b64clip = (ms: number) => toBase64(encodeWavPcm16(new Int16Array((16000 * ms) / 1000).fill(500), 16000))

let ctx: FakeAudioContext

beforeEach(() => {
  vi.useFakeTimers()
  FakeWebSocket.reset()
  ctx = new FakeAudioContext()
  liveTest.log.length = 0
})
afterEach(() => vi.useRealTimers())

function start(search: string, stored: Record<string, string> = {}) {
  const scope = effectScope()
  const o = scope.run(() =>
    useOverlay({
      location: { protocol: 'https:', host: 'bot.example', pathname: '/astrbot/live/overlay', search },
      storage: { getItem: (k) => stored[k] ?? null },
      WebSocketImpl: FakeWebSocket as never,
      audioContext: () => ctx as never,
    }),
  )!
  return { o, scope }
}

function connected(search = '?room=stream&token=jwt') {
  const { o, scope } = start(search)
  const ws = FakeWebSocket.last
  ws.open()
  ws.receive({ t: 'hello', data: { protocol: 'astrbot-live', version: 1, room: { name: 'stream', role: 'listener', audio: false } } })
  return { o, ws, scope }
}

const viewerTurn = (ws: FakeWebSocket, turn: string) => {
  ws.receive({ t: 'user_msg', turn, data: { text: 'prompt', viewers: [{ name: 'Mika', kind: 'danmaku', text: 'hello!' }] } })
  ws.receive({ t: 'bot_delta_chunk', turn, data: { text: 'Hi Mika!' } })
}

describe('useOverlay', () => {
  it('joins the room as a silent listener on the page’s own host and prefix', () => {
    start('?room=stream&token=j.w.t')
    expect(FakeWebSocket.last.url).toBe('wss://bot.example/astrbot/api/v1/live/ws?token=j.w.t&room=stream&role=listener&audio=0')
  })

  it('does not connect without a room or credentials, and says what is missing', () => {
    expect(start('?token=t').o.problem.value).toEqual({ code: 'missing_room' })
    expect(start('?room=stream').o.problem.value).toEqual({ code: 'missing_credentials' })
    expect(FakeWebSocket.instances).toHaveLength(0)
    // Opened in a browser logged in to the dashboard, it uses that login.
    start('?room=stream', { token: 'stored' })
    expect(FakeWebSocket.last.url).toContain('token=stored')
  })

  it('shows a turn while it runs and fades it a while after its end', async () => {
    const { o, ws } = connected()
    expect(o.visible.value).toBe(false)
    viewerTurn(ws, 'V1')
    expect(o.visible.value).toBe(true)
    expect(o.captions.viewers.map((v) => v.name)).toEqual(['Mika'])
    expect(o.captions.bot).toBe('Hi Mika!')
    vi.advanceTimersByTime(60000) // no end yet: it stays
    expect(o.visible.value).toBe(true)
    ws.receive({ t: 'end', turn: 'V1', data: { interrupted: false, text: 'Hi Mika!' } })
    vi.advanceTimersByTime(3999)
    expect(o.visible.value).toBe(true)
    vi.advanceTimersByTime(1)
    expect(o.visible.value).toBe(false)
    expect(o.captions.bot).toBe('Hi Mika!') // the text stays while it fades out
  })

  it('keeps a new turn that starts during the hold on screen', () => {
    const { o, ws } = connected('?room=stream&token=jwt&hold=2')
    viewerTurn(ws, 'V1')
    ws.receive({ t: 'end', turn: 'V1', data: { interrupted: false } })
    vi.advanceTimersByTime(1500)
    ws.receive({ t: 'user_msg', turn: 'S2', data: { text: 'streamer question' } })
    vi.advanceTimersByTime(5000)
    expect(o.visible.value).toBe(true)
    expect(o.captions.user).toBe('streamer question')
  })

  it('with audio=1 plays the turn in order, waits for it before fading, and honours stop_play', async () => {
    const { o, ws } = connected('?room=stream&token=jwt&audio=1')
    expect(ws.url).toContain('audio=1')
    viewerTurn(ws, 'V1')
    ws.receive({ t: 'response', turn: 'V1', seq: 0, data: b64clip(1000), format: 'wav', duration_ms: 1000 })
    ws.receive({ t: 'response', turn: 'V1', seq: 1, data: b64clip(1000), format: 'wav', duration_ms: 1000 })
    await flush(20)
    expect(ctx.sources.map((s) => s.startedAt)).toEqual([0.03, 1.03])
    ws.receive({ t: 'end', turn: 'V1', data: { interrupted: false } })
    vi.advanceTimersByTime(40)
    vi.advanceTimersByTime(5000) // the hold has passed, but the audio still plays (time stands at 0)
    expect(o.visible.value).toBe(true)
    ctx.currentTime = 2.1 // the audio has finished
    vi.advanceTimersByTime(40)
    vi.advanceTimersByTime(4000)
    expect(o.visible.value).toBe(false)

    viewerTurn(ws, 'V2')
    ws.receive({ t: 'response', turn: 'V2', seq: 0, data: b64clip(1000) })
    await flush(20)
    ws.receive({ t: 'stop_play', turn: 'V2' })
    expect(ctx.sources[2].stopped).toBe(true)
    ws.receive({ t: 'response', turn: 'V2', seq: 1, data: b64clip(1000) })
    await flush(20)
    expect(ctx.sources).toHaveLength(3) // late audio of a stopped turn is dropped
    expect(ws.sent.filter((f) => typeof f === 'string' && !f.includes('"ping"'))).toEqual([]) // a listener sends nothing
  })

  it('without audio=1 plays nothing, even if audio arrives', async () => {
    const { ws } = connected()
    viewerTurn(ws, 'V1')
    ws.receive({ t: 'response', turn: 'V1', seq: 0, data: b64clip(500) })
    await flush(20)
    expect(ctx.sources).toHaveLength(0)
  })

  it('reconnects quickly after a plugin reload and keeps reconnecting with backoff', () => {
    const { o, ws } = connected()
    ws.drop(1012, 'reloading')
    expect(o.socket.status.value).toBe('reconnecting')
    vi.advanceTimersByTime(625)
    expect(FakeWebSocket.instances).toHaveLength(2)
    FakeWebSocket.last.drop(1006)
    expect(o.socket.retryInMs.value).toBeGreaterThanOrEqual(750)
  })

  it('shows a refusal, retries slowly, and clears it once a connection succeeds', () => {
    const { o, ws } = connected()
    ws.receive({ t: 'error', code: 'UNAUTHORIZED', data: 'Token expired' })
    ws.drop(1008)
    expect(o.problem.value).toEqual({ code: 'UNAUTHORIZED', message: 'Token expired' })
    vi.advanceTimersByTime(14000)
    expect(FakeWebSocket.instances).toHaveLength(1)
    vi.advanceTimersByTime(1000)
    expect(FakeWebSocket.instances).toHaveLength(2)
    FakeWebSocket.last.open()
    FakeWebSocket.last.receive({ t: 'hello', data: { protocol: 'astrbot-live', version: 1 } })
    expect(o.problem.value).toBeNull()
  })
})
