import { computed, reactive, shallowRef } from 'vue'
import { setPageParam } from '../lib/addressBar'
import { Conversation } from '../lib/conversation'
import { dispatchFrame, type FrameHandlers } from '../lib/frames'
import type { ServerFrame } from '../lib/protocol'
import { countAudioSent, liveTest, record } from '../lib/testLog'
import { pageParams, pathPrefix } from '../lib/urls'
import { useAudioPlayer } from './useAudioPlayer'
import { useConversationHistory } from './useConversationHistory'
import { useDashboardAuth } from './useDashboardAuth'
import { useLiveConnection } from './useLiveConnection'
import { useLiveRoom } from './useLiveRoom'
import type { WebSocketCtor } from './useLiveSocket'
import { useMicrophone } from './useMicrophone'
import { useTurnPlayback } from './useTurnPlayback'

export type { FatalError } from './useLiveConnection'
export type OrbState = 'connecting' | 'listening' | 'hearing' | 'thinking' | 'speaking'

export interface LiveSessionOptions {
  /** @default window.location (and then settings are mirrored into the address bar) */
  location?: Pick<Location, 'protocol' | 'host' | 'pathname' | 'search'>
  /** Where the dashboard keeps its token. @default window.localStorage */
  storage?: Pick<Storage, 'getItem'> & Partial<Pick<Storage, 'setItem' | 'removeItem'>>
  /** Test seams. */
  WebSocketImpl?: WebSocketCtor
  audioContext?: () => AudioContext
  fetch?: typeof fetch
}

/**
 * The Live page's session, put together from parts with one job each: the login, the connection,
 * the room, the history, the microphone and playback. Every server frame goes through one
 * dispatcher to the parts that handle it.
 */
export function useLiveSession(opts: LiveSessionOptions = {}) {
  const loc = opts.location ?? window.location
  const mirror = opts.location ? () => {} : setPageParam
  const params = pageParams(loc.search)
  const prefix = pathPrefix(loc.pathname)
  const auth = useDashboardAuth({ urlToken: params.token, storage: opts.storage, fetch: opts.fetch, loginUrl: `${prefix}/api/v1/auth/login` })
  const conversationId = shallowRef(params.conversation_id)
  const conv = reactive(new Conversation())

  const player = useAudioPlayer({ log: record, context: opts.audioContext })
  const mic = useMicrophone({
    context: opts.audioContext,
    onFrame: (pcm) => {
      if (connection.socket.send(pcm)) countAudioSent(pcm.byteLength)
    },
  })
  const room = useLiveRoom({
    initial: params.room,
    location: loc,
    token: () => auth.token.value,
    send: (frame) => connection.send(frame),
    stopAudio: () => player.stopAll(),
    onSwitch: (name) => {
      mirror('room', name)
      playback.reset()
      conv.clear()
      connection.open()
    },
  })
  const connection = useLiveConnection({
    location: loc,
    auth,
    // pause_play: speech over the answer pauses it until the server knows it was meant (an "mm-hmm" resumes it)
    params: () => ({ ...(room.socketParams() ?? { conversation_id: conversationId.value }), report_playback: '1', pause_play: '1' }),
    onFrame: (frame) => route(frame),
    onOpen: () => {
      if (mic.muted.value) connection.send({ t: 'mute' })
      if (!mic.active.value && !mic.error.value) void mic.start()
    },
    onClose: () => {
      playback.reset()
      conv.reset()
      room.view.reset()
    },
    WebSocketImpl: opts.WebSocketImpl,
  })
  const history = useConversationHistory({ prefix, token: () => auth.token.value, conversation: conv, fetch: opts.fetch })
  const playback = useTurnPlayback(player, {
    send: connection.send,
    currentTurn: () => conv.currentTurn,
    onStopped: (turn) => conv.stopped(turn),
    // With its audio off, a room's streamer page plays nothing: what it "played" says nothing.
    reportsPlayback: () => !room.room.value || room.view.audio,
  })

  /** What the session itself does with frames: audio, and the conversation id to come back to. */
  const sessionHandlers: FrameHandlers = {
    hello: (f) => {
      if (f.data.conversation_id && !room.room.value) rememberConversation(f.data.conversation_id)
    },
    response: (f) => {
      if (room.room.value && !room.view.audio) return // sent before the server saw our set_audio
      playback.onResponse(f)
    },
    stop_play: (f) => playback.onStopPlay(f.turn),
    pause_play: (f) => playback.onPausePlay(f.turn),
    resume_play: () => playback.onResumePlay(),
  }
  const handlerSets: FrameHandlers[] = [
    conv.frameHandlers(),
    room.view.frameHandlers(),
    connection.frameHandlers,
    history.frameHandlers,
    sessionHandlers,
  ]
  function route(frame: ServerFrame): void {
    dispatchFrame(frame, handlerSets)
  }

  /** Keep the server's conversation id, in the socket URL and (on the real page) in the address bar. */
  function rememberConversation(id: string | null): void {
    conversationId.value = id
    mirror('conversation_id', id)
  }

  /** Try again after a fatal refusal, optionally in a fresh conversation. */
  function retry(newConversation = false): void {
    if (newConversation) rememberConversation(null)
    connection.open()
  }

  function sendText(text: string): boolean {
    const clean = text.trim()
    return clean ? connection.send({ t: 'text_input', text: clean }) : false
  }

  function toggleMute(): void {
    mic.setMuted(!mic.muted.value)
    connection.send({ t: mic.muted.value ? 'mute' : 'unmute' })
  }

  const status = connection.status
  const orbState = computed<OrbState>(() => {
    if (status.value !== 'open') return 'connecting'
    if (conv.userSpeaking || player.paused.value) return 'hearing'
    if (player.playing.value) return 'speaking'
    return conv.serverState === 'listening' ? 'listening' : conv.serverState
  })
  const orbLevel = computed(() => (orbState.value === 'speaking' ? player.level.value : mic.level.value))
  const canInterrupt = computed(
    () => status.value === 'open' && (player.playing.value || player.paused.value || conv.serverState !== 'listening'),
  )

  liveTest.snapshot = () => ({
    status: status.value,
    orbState: orbState.value,
    serverState: conv.serverState,
    turn: conv.currentTurn,
    conversationId: conversationId.value,
    muted: mic.muted.value,
    room: room.room.value,
    roomAudio: room.view.audio,
    micActive: mic.active.value,
    micError: mic.error.value,
    playing: player.playing.value,
    paused: player.paused.value,
    backend: conv.hello?.backend ?? null,
  })

  return {
    auth,
    /** Opened inside another page (`?embed=webchat`: the WebChat overlay). */
    embed: params.embed,
    socket: connection.socket,
    rttMs: connection.rttMs,
    fatal: connection.fatal,
    retry,
    conv,
    room: room.room,
    roomView: room.view,
    setRoom: room.setRoom,
    setRoomAudio: room.setAudio,
    overlayHref: room.overlayHref,
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
