import { getCurrentScope, onScopeDispose, reactive, shallowRef, watch } from 'vue'
import { dispatchFrame, type FrameHandlers } from '../lib/frames'
import { missingOption, OverlayCaptions, overlayOptions, overlaySocketParams } from '../lib/overlay'
import { asServerFrame, CLOSE_POLICY_VIOLATION } from '../lib/protocol'
import { liveTest, record } from '../lib/testLog'
import { liveSocketUrl } from '../lib/urls'
import { useAudioPlayer } from './useAudioPlayer'
import { useLiveSocket, type WebSocketCtor } from './useLiveSocket'
import { useTurnPlayback } from './useTurnPlayback'

/** Why the overlay shows no captions: a URL it cannot use, or the server's refusal. */
export interface OverlayProblem {
  code: string
  message?: string
}

export interface OverlayDeps {
  /** @default window.location */
  location?: Pick<Location, 'protocol' | 'host' | 'pathname' | 'search'>
  /** A dashboard login in this browser is used when the URL has no credentials. @default window.localStorage */
  storage?: Pick<Storage, 'getItem'>
  /** Test seams. */
  WebSocketImpl?: WebSocketCtor
  audioContext?: () => AudioContext
}

const PING_MS = 15000
/** Error codes that come with a refused connection (docs/live-api.md, Authentication and Live rooms). */
const REFUSALS = ['UNAUTHORIZED', 'FORBIDDEN', 'BAD_USER', 'TOO_MANY_SESSIONS', 'TOO_MANY_ROOMS', 'INVALID_MESSAGE_FORMAT']
/** After a refusal (close 1008: bad credentials, too many sessions), retry slowly: a person must act. */
const REFUSED_RETRY_MS = 15000

function storedToken(storage: Pick<Storage, 'getItem'> | undefined): string | null {
  try {
    return storage?.getItem('token') || null
  } catch {
    return null
  }
}

/**
 * The OBS overlay: joins a room as a `listener`, keeps the caption of the turn being answered,
 * fades it `holdMs` after the turn ended and its audio (with `audio=1`) finished playing, and
 * reconnects for as long as it is open (quickly after a plugin reload).
 */
export function useOverlay(deps: OverlayDeps = {}) {
  const loc = deps.location ?? window.location
  const options = overlayOptions(loc.search, storedToken(deps.storage ?? globalThis.localStorage))
  const missing = missingOption(options)
  const captions = reactive(new OverlayCaptions())
  const visible = shallowRef(false)
  const problem = shallowRef<OverlayProblem | null>(missing ? { code: `missing_${missing}` } : null)

  const player = useAudioPlayer({ log: record, context: deps.audioContext })
  const playback = useTurnPlayback(player, {
    send: () => false, // a listener only listens
    currentTurn: () => captions.turn,
    reportsPlayback: () => false,
  })
  const socket = useLiveSocket(missing ? null : liveSocketUrl(loc, overlaySocketParams(options)), {
    WebSocketImpl: deps.WebSocketImpl,
    maxDelayMs: 30000,
    onOpen: () => record('open'),
    onMessage,
    onClose: (info) => {
      record('close', { code: info.code, reason: info.reason })
      playback.reset()
    },
    reconnectDelay: (info, backoff) => (info.code === CLOSE_POLICY_VIOLATION ? Math.max(backoff, REFUSED_RETRY_MS) : backoff),
  })

  /** What the overlay itself does with frames (the caption has its own handlers). */
  const overlayHandlers: FrameHandlers = {
    response: (f) => {
      if (options.audio) playback.onResponse(f)
    },
    stop_play: (f) => playback.onStopPlay(f.turn),
    // the room's streamer page asked for pause_play: its listeners hold and resume with it
    pause_play: (f) => playback.onPausePlay(f.turn),
    resume_play: () => playback.onResumePlay(),
    hello: () => (problem.value = null),
    // A refusal (the error frame before close 1008) stays on screen until a connection succeeds.
    error: (f) => {
      if (f.code && REFUSALS.includes(f.code)) problem.value = { code: f.code, message: f.data }
    },
  }
  const handlerSets = [captions.frameHandlers(), overlayHandlers]

  function onMessage(raw: unknown): void {
    const frame = asServerFrame(raw)
    if (!frame) return
    record('frame', { t: frame.t, turn: 'turn' in frame ? frame.turn : undefined, seq: 'seq' in frame ? frame.seq : undefined })
    const shown = captions.revision
    dispatchFrame(frame, handlerSets)
    if (captions.revision !== shown) visible.value = !captions.empty
  }

  // Fade a finished caption once its audio has played, unless a new turn shows first.
  let hideTimer: ReturnType<typeof setTimeout> | null = null
  const cancelHide = () => {
    if (hideTimer !== null) clearTimeout(hideTimer)
    hideTimer = null
  }
  watch(
    [() => captions.ended, () => captions.turn, player.playing],
    ([ended, , playing]) => {
      cancelHide()
      if (!ended || playing) return
      hideTimer = setTimeout(() => {
        hideTimer = null
        visible.value = false
      }, options.holdMs)
    },
    { flush: 'sync' },
  )

  const ping = setInterval(() => {
    if (socket.status.value === 'open') socket.send({ t: 'ping' })
  }, PING_MS)
  if (getCurrentScope()) onScopeDispose(() => {
    clearInterval(ping)
    cancelHide()
  })

  liveTest.snapshot = () => ({
    status: socket.status.value,
    visible: visible.value,
    turn: captions.turn,
    ended: captions.ended,
    audio: options.audio,
    playing: player.playing.value,
  })

  return { options, captions, visible, problem, socket, player }
}

export type Overlay = ReturnType<typeof useOverlay>
