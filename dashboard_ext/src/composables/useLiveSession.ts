import { computed, getCurrentScope, onScopeDispose, reactive, shallowRef, watch } from 'vue'
import { Conversation } from '../lib/conversation'
import { asServerFrame, CLOSE_POLICY_VIOLATION, UNAUTHORIZED, type ClientFrame } from '../lib/protocol'
import { isRoomName, RoomView } from '../lib/room'
import { countAudioSent, liveTest, record } from '../lib/testLog'
import { liveSocketUrl, loginUrl, overlayUrl, pageParams } from '../lib/urls'
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
  /** The live room this page streams in as the streamer (`?room=`), or null. */
  const room = shallowRef<string | null>(isRoomName(params.room) ? params.room : null)
  const roomView = reactive(new RoomView(room.value))
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
  const socket = useLiveSocket(socketUrl, { onOpen, onMessage, onClose, shouldReconnect, WebSocketImpl: opts.WebSocketImpl })
  const playback = useTurnPlayback(player, {
    send,
    currentTurn: () => conv.currentTurn,
    onStopped: (turn, played) => conv.stopped(turn, played),
    // With its audio off, a room's streamer page plays nothing: what it "played" says nothing.
    reportsPlayback: () => !room.value || roomView.audio,
  })

  function socketUrl(): string | null {
    const token = auth.token.value
    if (!token) return null
    const playback = { report_playback: '1' } // we send playback_report after stop_play
    if (!room.value) return liveSocketUrl(loc, { token, conversation_id: conversationId.value, ...playback })
    // A room has its own conversation; the member that creates it does not choose it here.
    return liveSocketUrl(loc, { token, room: room.value, role: 'streamer', audio: roomView.audio ? '1' : '0', ...playback })
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
    if (mic.muted.value) send({ t: 'mute' })
    if (!mic.active.value && !mic.error.value) void mic.start()
  }

  function onClose(info: CloseInfo): void {
    record('close', { code: info.code, reason: info.reason })
    playback.reset()
    conv.reset()
    roomView.reset()
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
    roomView.apply(frame)
    if (frame.t === 'response') {
      if (room.value && !roomView.audio) return // sent before the server saw our set_audio
      return playback.onResponse(frame)
    }
    if (frame.t === 'hello' && frame.data.conversation_id && !room.value) rememberConversation(frame.data.conversation_id)
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
    setPageParam('conversation_id', id)
  }

  /** Mirror a setting into the address bar (on the real page), so a reload keeps it. */
  function setPageParam(key: string, value: string | null): void {
    if (opts.location || typeof window === 'undefined') return
    const url = new URL(window.location.href)
    if (url.searchParams.get(key) === value) return
    if (value) url.searchParams.set(key, value)
    else url.searchParams.delete(key)
    window.history.replaceState(window.history.state, '', url)
  }

  /** Stream in room `name` as its streamer (null: leave the room for the personal conversation). */
  function setRoom(name: string | null): boolean {
    const next = name?.trim() || null
    if (next !== null && !isRoomName(next)) return false
    if (next === room.value) return true
    room.value = next
    setPageParam('room', next)
    fatal.value = null
    playback.reset()
    conv.clear()
    roomView.reset()
    roomView.requested = next
    socket.open()
    return true
  }

  /** Receive the room's audio on this page, or not (`set_audio`); other members are unaffected. */
  function setRoomAudio(enabled: boolean): void {
    roomView.audio = enabled
    if (!enabled) player.stopAll()
    send({ t: 'set_audio', enabled })
  }

  /** The OBS overlay for the current room, logged in with this page's JWT (it expires). */
  const overlayHref = (withAudio = false): string | null =>
    room.value && auth.token.value ? overlayUrl(loc, { room: room.value, token: auth.token.value, audio: withAudio }) : null

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
    room: room.value,
    roomAudio: roomView.audio,
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
    room,
    roomView,
    setRoom,
    setRoomAudio,
    overlayHref,
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
