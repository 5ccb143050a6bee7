import { computed, getCurrentScope, onScopeDispose, reactive, shallowRef, watch } from 'vue'
import { Conversation } from '../lib/conversation'
import { asServerFrame, CLOSE_POLICY_VIOLATION, UNAUTHORIZED, type ClientFrame } from '../lib/protocol'
import { countAudioSent, liveTest, record } from '../lib/testLog'
import { liveSocketUrl, loginUrl, pageParams } from '../lib/urls'
import { useAudioPlayer } from './useAudioPlayer'
import { useDashboardAuth } from './useDashboardAuth'
import { useLiveSocket, type CloseInfo, type WebSocketCtor } from './useLiveSocket'
import { useMicrophone } from './useMicrophone'
import { useTurnPlayback } from './useTurnPlayback'

export type OrbState = 'connecting' | 'listening' | 'hearing' | 'thinking' | 'speaking'

/** The server refused the session for a reason a new login does not fix. */
export interface FatalError {
  code: string
  message: string
}

const PING_MS = 15000
/** Close codes that mean "your credentials were refused" (1008 and the 4401/4403 HTTP mirrors). */
const AUTH_CLOSE_CODES = [CLOSE_POLICY_VIOLATION, 4401, 4403]

export interface LiveSessionOptions {
  /** @default window.location */
  location?: Pick<Location, 'protocol' | 'host' | 'pathname' | 'search'>
  /** Where the dashboard keeps its token. @default window.localStorage */
  storage?: Pick<Storage, 'getItem'>
  /** Test seams. */
  WebSocketImpl?: WebSocketCtor
  audioContext?: () => AudioContext
}

/** The whole Live Mode session: login, socket, microphone, playback and the conversation view. */
export function useLiveSession(opts: LiveSessionOptions = {}) {
  const loc = opts.location ?? window.location
  const params = pageParams(loc.search)
  const auth = useDashboardAuth({ urlToken: params.token, storage: opts.storage })
  const conversationId = shallowRef(params.conversation_id)
  const conv = reactive(new Conversation())
  const rttMs = shallowRef<number | null>(null)
  const fatal = shallowRef<FatalError | null>(null)
  let lastError: FatalError | null = null

  const player = useAudioPlayer({ log: record, context: opts.audioContext })
  const mic = useMicrophone({
    context: opts.audioContext,
    onFrame: (pcm) => {
      if (socket.send(pcm)) countAudioSent(pcm.byteLength)
    },
  })
  const socket = useLiveSocket(
    () =>
      auth.token.value
        ? liveSocketUrl(loc, {
            token: auth.token.value,
            conversation_id: conversationId.value,
            room: params.room,
            report_playback: '1', // we send playback_report after stop_play
          })
        : null,
    { onOpen, onMessage, onClose, shouldReconnect, WebSocketImpl: opts.WebSocketImpl },
  )
  const playback = useTurnPlayback(
    player,
    send,
    () => conv.currentTurn,
    (turn, played) => conv.stopped(turn, played),
  )

  function send(frame: ClientFrame): boolean {
    const ok = socket.send(frame)
    record('sent', { t: frame.t, turn: 'turn' in frame ? frame.turn : undefined, ok })
    return ok
  }

  function onOpen(): void {
    record('open')
    lastError = null
    fatal.value = null
    if (mic.muted.value) send({ t: 'mute' })
    if (!mic.active.value && !mic.error.value) void mic.start()
  }

  function onClose(info: CloseInfo): void {
    record('close', { code: info.code, reason: info.reason })
    playback.reset()
    conv.reset()
    rttMs.value = null
  }

  function shouldReconnect(info: CloseInfo): boolean {
    if (!AUTH_CLOSE_CODES.includes(info.code)) return true
    // 1008 follows an error frame: only a refused credential calls for a new login.
    if (!lastError || lastError.code === UNAUTHORIZED) auth.reject()
    else fatal.value = lastError
    return false
  }

  function onMessage(raw: unknown): void {
    const frame = asServerFrame(raw)
    if (!frame) return
    const turn = 'turn' in frame ? frame.turn : undefined
    record('frame', { t: frame.t, turn, seq: 'seq' in frame ? frame.seq : undefined })
    conv.apply(frame)
    if (frame.t === 'response') return playback.onResponse(frame)
    if (frame.t === 'hello' && frame.data.conversation_id) rememberConversation(frame.data.conversation_id)
    else if (frame.t === 'stop_play') playback.onStopPlay(turn)
    else if (frame.t === 'pong' && typeof frame.data === 'number') rttMs.value = Math.round(performance.now() - frame.data)
    else if (frame.t === 'error' && frame.code) {
      lastError = { code: frame.code, message: frame.data ?? frame.code }
      if (frame.code === UNAUTHORIZED) {
        auth.reject()
        socket.close()
      }
    }
  }

  /** Keep the server's conversation id, in the socket URL and (on the real page) in the address bar. */
  function rememberConversation(id: string | null): void {
    conversationId.value = id
    if (opts.location || typeof window === 'undefined') return
    const url = new URL(window.location.href)
    if (url.searchParams.get('conversation_id') === id) return
    if (id) url.searchParams.set('conversation_id', id)
    else url.searchParams.delete('conversation_id')
    window.history.replaceState(window.history.state, '', url)
  }

  /** Try again after a fatal refusal, optionally in a fresh conversation. */
  function retry(newConversation = false): void {
    fatal.value = null
    if (newConversation) rememberConversation(null)
    socket.open()
  }

  function sendText(text: string): boolean {
    const clean = text.trim()
    return clean ? send({ t: 'text_input', text: clean }) : false
  }

  function toggleMute(): void {
    mic.setMuted(!mic.muted.value)
    send({ t: mic.muted.value ? 'mute' : 'unmute' })
  }

  const orbState = computed<OrbState>(() => {
    if (socket.status.value !== 'open') return 'connecting'
    if (conv.userSpeaking) return 'hearing'
    if (player.playing.value) return 'speaking'
    return conv.serverState === 'listening' ? 'listening' : conv.serverState
  })
  const orbLevel = computed(() => (orbState.value === 'speaking' ? player.level.value : mic.level.value))
  const canInterrupt = computed(
    () => socket.status.value === 'open' && (player.playing.value || conv.serverState !== 'listening'),
  )

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

  liveTest.snapshot = () => ({
    status: socket.status.value,
    orbState: orbState.value,
    serverState: conv.serverState,
    turn: conv.currentTurn,
    conversationId: conversationId.value,
    muted: mic.muted.value,
    micActive: mic.active.value,
    micError: mic.error.value,
    playing: player.playing.value,
  })

  return {
    auth,
    loginHref: loginUrl(loc),
    socket,
    rttMs,
    fatal,
    retry,
    conv,
    mic,
    player,
    orbState,
    orbLevel,
    canInterrupt,
    interrupt: playback.interrupt,
    sendText,
    toggleMute,
  }
}

export type LiveSession = ReturnType<typeof useLiveSession>
