import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { effectScope } from 'vue'
import { useLiveSession } from '../src/composables/useLiveSession'
import { encodeWavPcm16 } from '../src/audio/wav'
import { liveTest } from '../src/lib/testLog'
import { FakeAudioContext, FakeWebSocket, flush, toBase64 } from './fakes'

const b64clip = (ms: number) =>
  toBase64(encodeWavPcm16(new Int16Array((16000 * ms) / 1000).fill(500), 16000))

let ctx: FakeAudioContext
let store: Record<string, string>
/** The host's HTTP API as the page sees it: the history of a conversation, and the login. */
let requests: { url: string; init?: RequestInit }[]
let historyRows: unknown[]

const json = (body: unknown, status = 200) =>
  ({ status, ok: status < 400, json: async () => body }) as Response

async function fakeFetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
  const url = String(input)
  requests.push({ url, init })
  if (url.includes('/api/v1/chat/sessions/')) return json({ status: 'ok', data: { history: historyRows } })
  if (url.endsWith('/api/v1/auth/login')) {
    const { password } = JSON.parse(String(init?.body))
    return password === 'Right-Pass-1'
      ? json({ status: 'ok', data: { token: 'fresh-jwt', username: 'astrbot', change_pwd_hint: false } })
      : json({ status: 'error', message: '用户名或密码错误', data: null }, 401)
  }
  return json({ status: 'error', message: 'not found' }, 404)
}

beforeEach(() => {
  vi.useFakeTimers()
  FakeWebSocket.reset()
  ctx = new FakeAudioContext()
  store = { token: 'jwt' }
  requests = []
  historyRows = []
  liveTest.log.length = 0
})
afterEach(() => vi.useRealTimers())

function start(search = '?conversation_id=c0') {
  const scope = effectScope()
  const s = scope.run(() =>
    useLiveSession({
      location: { protocol: 'http:', host: '127.0.0.1:6185', pathname: '/live/', search },
      storage: {
        getItem: (k) => store[k] ?? null,
        setItem: (k, v) => void (store[k] = v),
        removeItem: (k) => void delete store[k],
      },
      WebSocketImpl: FakeWebSocket as never,
      audioContext: () => ctx as never,
      fetch: fakeFetch as typeof fetch,
    }),
  )!
  return { s, scope }
}

const sentJson = (ws: FakeWebSocket) => ws.sent.filter((x) => typeof x === 'string').map((x) => JSON.parse(x as string))

async function connected() {
  const { s, scope } = start()
  const ws = FakeWebSocket.last
  ws.open()
  ws.receive({ t: 'hello', data: { protocol: 'astrbot-live', version: 1, conversation_id: 'c1' } })
  await flush()
  return { s, ws, scope }
}

describe('useLiveSession', () => {
  it('connects with the dashboard token and the page conversation, then keeps the server one', async () => {
    const { s, ws } = await connected()
    expect(ws.url).toBe('ws://127.0.0.1:6185/api/v1/live/ws?token=jwt&conversation_id=c0&report_playback=1&pause_play=1')
    expect(s.orbState.value).toBe('listening')
    ws.drop(1006)
    expect(s.orbState.value).toBe('connecting')
    vi.advanceTimersByTime(1000)
    expect(FakeWebSocket.last.url).toContain('conversation_id=c1')
  })

  it('plays response clips of a turn and follows the orb states', async () => {
    const { s, ws } = await connected()
    ws.receive({ t: 'vad', data: { state: 'speech_start' } })
    expect(s.orbState.value).toBe('hearing')
    ws.receive({ t: 'state', data: { state: 'thinking' } })
    ws.receive({ t: 'user_msg', turn: 'T1', data: { text: 'hi' } })
    expect(s.orbState.value).toBe('thinking')
    ws.receive({ t: 'response', turn: 'T1', seq: 1, data: b64clip(500), format: 'wav', duration_ms: 500 })
    ws.receive({ t: 'response', turn: 'T1', seq: 2, data: b64clip(500), format: 'wav', duration_ms: 500 })
    await flush(20)
    expect(ctx.sources).toHaveLength(2)
    expect(s.orbState.value).toBe('speaking')
    expect(liveTest.log.filter((e) => e.kind === 'scheduled').map((e) => e.seq)).toEqual([1, 2])
  })

  it('on stop_play stops the turn, reports what was played once, and drops its later audio', async () => {
    const { ws } = await connected()
    ws.receive({ t: 'response', turn: 'T1', seq: 1, data: b64clip(1000) })
    await flush(20)
    ctx.currentTime = 0.43
    ws.receive({ t: 'stop_play', turn: 'T1' })
    expect(ctx.sources[0].stopped).toBe(true)
    ws.receive({ t: 'response', turn: 'T1', seq: 2, data: b64clip(1000) })
    ws.receive({ t: 'stop_play', turn: 'T1' })
    await flush(20)
    expect(ctx.sources).toHaveLength(1)
    expect(sentJson(ws).filter((f) => f.t === 'playback_report')).toEqual([
      { t: 'playback_report', turn: 'T1', played_ms: 400 },
    ])
  })

  it('pause_play holds the answer while the user speaks; resume_play plays on; the notice says why', async () => {
    const { s, ws } = await connected()
    ws.receive({ t: 'hello', data: { protocol: 'astrbot-live', version: 1, conversation_id: 'c1', backend: 'cascade', features: ['pause_play'] } })
    ws.receive({ t: 'state', data: { state: 'speaking' } })
    ws.receive({ t: 'response', turn: 'T3', seq: 1, data: b64clip(1000) })
    await flush(20)
    ctx.currentTime = 0.33
    ws.receive({ t: 'vad', data: { state: 'speech_start' } })
    ws.receive({ t: 'pause_play', turn: 'T3' })
    expect(ctx.sources[0].stopped).toBe(true)
    expect(s.player.paused.value).toBe(true)
    expect(s.orbState.value).toBe('hearing')
    ws.receive({ t: 'vad', data: { state: 'speech_end' } })
    expect(s.orbState.value).toBe('hearing') // still paused: the server is deciding
    ctx.currentTime = 2
    ws.receive({ t: 'transcript_empty', turn: 'X', data: { reason: 'backchannel' } })
    ws.receive({ t: 'resume_play', turn: 'T3' })
    expect(s.conv.notHeardReason).toBe('backchannel')
    expect(s.conv.notHeardCount).toBe(1)
    expect(s.player.paused.value).toBe(false)
    expect(ctx.sources[1].startedAt).toBeCloseTo(2.03, 9)
    expect(ctx.sources[1].offset).toBeCloseTo(0.3, 9)
    expect(liveTest.snapshot?.()).toMatchObject({ paused: false, backend: 'cascade' })
  })

  it('a meant interruption after a pause reports what played up to the pause', async () => {
    const { s, ws } = await connected()
    ws.receive({ t: 'response', turn: 'T4', seq: 1, data: b64clip(1000) })
    await flush(20)
    ctx.currentTime = 0.53
    ws.receive({ t: 'pause_play', turn: 'T4' })
    ctx.currentTime = 1.7
    ws.receive({ t: 'stop_play', turn: 'T4' })
    expect(sentJson(ws).filter((f) => f.t === 'playback_report')).toEqual([
      { t: 'playback_report', turn: 'T4', played_ms: 500 },
    ])
    expect(s.player.paused.value).toBe(false)
    ws.receive({ t: 'response', turn: 'T5', seq: 1, data: b64clip(200) })
    await flush(20)
    expect(ctx.sources.at(-1)?.startedAt).toBeCloseTo(1.73, 9) // the next answer is not held
  })

  it('interrupt() stops locally and tells the server the turn and played ms', async () => {
    const { s, ws } = await connected()
    ws.receive({ t: 'state', data: { state: 'speaking' } })
    ws.receive({ t: 'bot_delta_chunk', turn: 'T2', data: { text: 'Long answer' } })
    ws.receive({ t: 'response', turn: 'T2', seq: 1, data: b64clip(2000) })
    await flush(20)
    ctx.currentTime = 1.03
    expect(s.canInterrupt.value).toBe(true)
    s.interrupt()
    expect(ctx.sources[0].stopped).toBe(true)
    ws.receive({ t: 'stop_play', turn: 'T2' })
    const frames = sentJson(ws)
    expect(frames.filter((f) => f.t === 'interrupt')).toEqual([{ t: 'interrupt', turn: 'T2', played_ms: 1000 }])
    expect(frames.some((f) => f.t === 'playback_report')).toBe(false)
  })

  it('sends typed text, mute and unmute', async () => {
    const { s, ws } = await connected()
    expect(s.sendText('  hello  ')).toBe(true)
    expect(s.sendText('   ')).toBe(false)
    s.toggleMute()
    s.toggleMute()
    expect(sentJson(ws).filter((f) => f.t !== 'ping')).toEqual([
      { t: 'text_input', text: 'hello' },
      { t: 'mute' },
      { t: 'unmute' },
    ])
  })

  it('answers ping with a round-trip time', async () => {
    const { s, ws } = await connected()
    vi.advanceTimersByTime(15000)
    const ping = sentJson(ws).find((f) => f.t === 'ping')
    expect(ping).toBeDefined()
    ws.receive({ t: 'pong', data: ping.data })
    expect(s.rttMs.value).not.toBeNull()
  })

  it.each([
    ['an UNAUTHORIZED error frame', (ws: FakeWebSocket) => ws.receive({ t: 'error', code: 'UNAUTHORIZED', data: 'bad token' })],
    ['a 1008 close', (ws: FakeWebSocket) => ws.drop(1008, 'unauthorized')],
  ])('after %s asks for a login instead of reconnecting', async (_, fail) => {
    const { s, ws } = await connected()
    fail(ws)
    expect(s.auth.needsLogin.value).toBe('rejected')
    expect(s.socket.status.value).toBe('closed')
    vi.advanceTimersByTime(30000)
    expect(FakeWebSocket.instances).toHaveLength(1)
    store.token = 'jwt2'
    vi.advanceTimersByTime(2000)
    expect(FakeWebSocket.instances).toHaveLength(2)
    expect(FakeWebSocket.last.url).toContain('token=jwt2')
  })

  it('shows a refusal that a login cannot fix, and can retry in a new conversation', async () => {
    const { s, ws } = await connected()
    ws.receive({ t: 'error', code: 'FORBIDDEN', data: 'conversation of another user' })
    ws.drop(1008)
    expect(s.auth.needsLogin.value).toBeNull()
    expect(s.fatal.value).toEqual({ code: 'FORBIDDEN', message: 'conversation of another user' })
    vi.advanceTimersByTime(30000)
    expect(FakeWebSocket.instances).toHaveLength(1)
    s.retry(true)
    expect(s.fatal.value).toBeNull()
    expect(FakeWebSocket.last.url).not.toContain('conversation_id')
  })

  it('reconnects after the server restarts the plugin (1012)', async () => {
    const { s, ws } = await connected()
    ws.drop(1012, 'Live Mode is reloading or stopping')
    expect(s.socket.status.value).toBe('reconnecting')
    vi.advanceTimersByTime(1000)
    expect(FakeWebSocket.instances).toHaveLength(2)
  })

  it('waits for a dashboard login when there is no token at all', () => {
    delete store.token
    const { s } = start()
    expect(s.auth.needsLogin.value).toBe('missing')
    expect(FakeWebSocket.instances).toHaveLength(0)
    store.token = 'later'
    vi.advanceTimersByTime(2000)
    expect(FakeWebSocket.last.url).toContain('token=later')
  })

  it('logs in with its own form through the host login API and shares the token with the dashboard', async () => {
    delete store.token
    const { s } = start()
    expect(await s.auth.login('astrbot', 'wrong')).toMatchObject({ reason: 'credentials' })
    expect(FakeWebSocket.instances).toHaveLength(0)
    expect(await s.auth.login('astrbot', 'Right-Pass-1')).toBeNull()
    const login = requests.find((r) => r.url.endsWith('/auth/login'))!
    expect(login.url).toBe('/api/v1/auth/login')
    expect(login.init?.method).toBe('POST')
    expect(store.token).toBe('fresh-jwt')
    expect(store.user).toBe('astrbot')
    expect(s.auth.needsLogin.value).toBeNull()
    expect(FakeWebSocket.last.url).toContain('token=fresh-jwt')
  })

  it('shows the earlier turns from the host history on open and again after a reconnect', async () => {
    historyRows = [
      { content: { type: 'user', message: [{ type: 'plain', text: 'earlier question' }] } },
      { content: { type: 'bot', message: [{ type: 'plain', text: 'earlier answer' }] } },
    ]
    const { s, ws } = await connected()
    await flush()
    const reads = () => requests.filter((r) => r.url.includes('/chat/sessions/'))
    expect(reads().map((r) => r.url)).toEqual(['/api/v1/chat/sessions/c1?page_size=100'])
    expect((reads()[0].init?.headers as Record<string, string>).Authorization).toBe('Bearer jwt')
    expect(s.conv.entries.map((e) => e.text)).toEqual(['earlier question', 'earlier answer'])

    ws.receive({ t: 'user_msg', turn: 'T9', data: { text: 'new question' } })
    ws.drop(1006)
    vi.advanceTimersByTime(1000)
    historyRows.push({ content: { type: 'user', message: [{ type: 'plain', text: 'new question' }] } })
    FakeWebSocket.last.open()
    FakeWebSocket.last.receive({ t: 'hello', data: { protocol: 'astrbot-live', version: 1, conversation_id: 'c1' } })
    await flush()
    expect(reads()).toHaveLength(2)
    expect(s.conv.entries.map((e) => e.text)).toEqual(['earlier question', 'earlier answer', 'new question'])
  })

  it('stops audio and clears in-flight state when the connection drops', async () => {
    const { s, ws } = await connected()
    ws.receive({ t: 'state', data: { state: 'speaking' } })
    ws.receive({ t: 'response', turn: 'T3', data: b64clip(1000) })
    await flush(20)
    ws.drop(1006)
    expect(ctx.sources[0].stopped).toBe(true)
    expect(s.conv.serverState).toBe('listening')
  })
})

describe('useLiveSession in a live room', () => {
  async function inRoom(search = '?room=stream&conversation_id=c0') {
    const { s, scope } = start(search)
    const ws = FakeWebSocket.last
    ws.open()
    ws.receive({
      t: 'hello',
      data: { protocol: 'astrbot-live', version: 1, conversation_id: 'room-conv', username: 'alice', room: { name: 'stream', role: 'streamer', audio: true } },
    })
    ws.receive({
      t: 'room',
      data: { name: 'stream', state: 'listening', queue: 2, members: { streamer: 1, listener: 1 }, you: { role: 'streamer', audio: true } },
    })
    await flush()
    return { s, ws, scope }
  }

  it('joins the room from the page URL as its streamer, without the personal conversation', async () => {
    const { s, ws } = await inRoom()
    expect(ws.url).toBe('ws://127.0.0.1:6185/api/v1/live/ws?token=jwt&room=stream&role=streamer&audio=1&report_playback=1&pause_play=1')
    expect(s.roomView.name).toBe('stream')
    expect(s.roomView.queue).toBe(2)
    expect(s.roomView.memberCount).toBe(2)
    ws.drop(1006)
    vi.advanceTimersByTime(1000)
    expect(FakeWebSocket.last.url).not.toContain('conversation_id') // the room's conversation is not adopted
  })

  it('ignores a room name the server would refuse', () => {
    start('?room=bad name')
    expect(FakeWebSocket.last.url).not.toContain('room=')
  })

  it('turns its audio off: set_audio, silence now, no played-ms reports, and off again after a reconnect', async () => {
    const { s, ws } = await inRoom()
    ws.receive({ t: 'response', turn: 'T1', seq: 0, data: b64clip(1000) })
    await flush(20)
    s.setRoomAudio(false)
    expect(ctx.sources[0].stopped).toBe(true)
    ws.receive({ t: 'response', turn: 'T2', seq: 0, data: b64clip(1000) }) // sent before the server saw set_audio
    await flush(20)
    expect(ctx.sources).toHaveLength(1)
    ws.receive({ t: 'stop_play', turn: 'T2' })
    ws.receive({ t: 'user_msg', turn: 'T3', data: { text: 'q' } })
    s.interrupt()
    const sent = sentJson(ws).filter((f) => f.t !== 'ping')
    expect(sent).toEqual([
      { t: 'set_audio', enabled: false },
      { t: 'interrupt', turn: 'T3' },
    ])
    ws.drop(1006)
    vi.advanceTimersByTime(1000)
    expect(FakeWebSocket.last.url).toContain('audio=0')
  })

  it('shows viewer turns with the viewers’ names', async () => {
    const { s, ws } = await inRoom()
    const viewers = [{ name: 'Mika', kind: 'danmaku', text: 'hello!', value: 0 }]
    ws.receive({ t: 'user_msg', turn: 'V', data: { text: '[Live chat] Viewer "Mika" says: hello!', viewers } })
    expect(s.conv.entries[0].viewers).toEqual(viewers)
  })

  it('leaves the room for the personal conversation, and joins another', async () => {
    const { s, ws } = await inRoom()
    ws.receive({ t: 'user_msg', turn: 'V', data: { text: 'hi' } })
    expect(s.setRoom('not valid!')).toBe(false)
    expect(s.setRoom(null)).toBe(true)
    expect(ws.closedWith?.code).toBe(1000)
    expect(FakeWebSocket.last.url).toBe('ws://127.0.0.1:6185/api/v1/live/ws?token=jwt&conversation_id=c0&report_playback=1&pause_play=1')
    expect(s.conv.entries).toEqual([])
    expect(s.overlayHref()).toBeNull()
    s.setRoom('other')
    expect(FakeWebSocket.last.url).toContain('room=other&role=streamer')
    expect(s.overlayHref()).toBe('http://127.0.0.1:6185/live/overlay?room=other&token=jwt')
    expect(s.overlayHref(true)).toBe('http://127.0.0.1:6185/live/overlay?room=other&token=jwt&audio=1')
  })

  it('says so when the server does not know rooms', async () => {
    const { s, scope } = start('?room=stream')
    FakeWebSocket.last.open()
    FakeWebSocket.last.receive({ t: 'hello', data: { protocol: 'astrbot-live', version: 1, conversation_id: 'c9' } })
    expect(s.roomView.unsupported).toBe(true)
    scope.stop()
  })
})
