/**
 * The OBS overlay's logic without the DOM: its URL options, how it joins the room, and the
 * caption it shows (the viewer line being answered and the character's words).
 */
import { dispatchFrame, type FrameHandlers } from './frames'
import type { ServerFrame, Viewer } from './protocol'
import { isRoomName } from './room'

export interface OverlayOptions {
  room: string | null
  /** Dashboard JWT (`token`), or an API key (`api_key` / `key`) with the `username` it speaks for. */
  token: string | null
  apiKey: string | null
  username: string | null
  /** Play the character's voice (`audio=1`); silent by default. */
  audio: boolean
  /** Caption size in CSS px (`font_size`). */
  fontSize: number
  /** Lines of the character's words kept on screen (`max_lines`); older lines scroll away. */
  maxLines: number
  /** How long a finished caption stays before it fades, in ms (`hold`, in seconds). */
  holdMs: number
  align: 'left' | 'center' | 'right'
}

export const OVERLAY_DEFAULTS = { fontSize: 34, maxLines: 3, holdMs: 4000 } as const

function bounded(raw: string | null, min: number, max: number, fallback: number): number {
  const n = raw === null || raw.trim() === '' ? NaN : Number(raw)
  return Number.isFinite(n) ? Math.min(max, Math.max(min, n)) : fallback
}

/** Read the overlay's options from its URL; `storedToken` is a dashboard login in this browser, if any. */
export function overlayOptions(search: string, storedToken: string | null = null): OverlayOptions {
  const q = new URLSearchParams(search)
  const apiKey = q.get('api_key') || q.get('key')
  const align = q.get('align')
  return {
    room: q.get('room'),
    token: q.get('token') || (apiKey ? null : storedToken),
    apiKey,
    username: q.get('username'),
    audio: ['1', 'true', 'on', 'yes'].includes((q.get('audio') ?? '').toLowerCase()),
    fontSize: bounded(q.get('font_size'), 10, 200, OVERLAY_DEFAULTS.fontSize),
    maxLines: Math.round(bounded(q.get('max_lines'), 1, 20, OVERLAY_DEFAULTS.maxLines)),
    holdMs: Math.round(bounded(q.get('hold'), 0.5, 120, OVERLAY_DEFAULTS.holdMs / 1000) * 1000),
    align: align === 'left' || align === 'right' ? align : 'center',
  }
}

/** What the URL lacks before the overlay can connect, or null. */
export function missingOption(o: OverlayOptions): 'room' | 'credentials' | 'username' | null {
  if (!isRoomName(o.room)) return 'room'
  if (!o.token && !o.apiKey) return 'credentials'
  if (o.apiKey && !o.username) return 'username'
  return null
}

/** Query of the overlay's socket: a `listener` of the room, with audio only when asked for. */
export function overlaySocketParams(o: OverlayOptions): Record<string, string | null> {
  const credentials: Record<string, string | null> = o.apiKey ? { api_key: o.apiKey, username: o.username } : { token: o.token }
  return { ...credentials, room: o.room, role: 'listener', audio: o.audio ? '1' : '0' }
}

// A sentence-initial expression tag such as [joy] or [开心] (the server never voices these).
const EXPRESSION_TAG = /(^|[.!?。！？\n]\s*)\[[^\s[\]\d][^\s[\]]{0,23}\]\s*/gu

/**
 * The character's text as words to read over video: no reasoning, code, markdown markup,
 * expression tags or `*stage directions*` (none of them is spoken). Works on partial text
 * while it streams: an unclosed `<think>` or code fence hides everything after it.
 */
export function captionText(raw: string): string {
  return raw
    .replace(/<think>[\s\S]*?(<\/think>|$)/g, '')
    .replace(/```[\s\S]*?(```|$)/g, '')
    .replace(/\*\*([^*]+)\*\*/g, '$1')
    .replace(/__([^_]+)__/g, '$1')
    .replace(/\*[^*\n]+\*/g, '')
    .replace(/\*[^*\n]*$/, '') // a stage direction still being written
    .replace(/`/g, '')
    .replace(/^#{1,6}\s+/gm, '')
    .replace(/\[([^\]\n]+)\]\((?:[^)\s]+)\)/g, '$1')
    .replace(EXPRESSION_TAG, '$1')
    .replace(/[ \t]{2,}/g, ' ')
    .trim()
}

/**
 * The caption of the turn being answered: who asked (viewers, or the streamer's own words) and
 * the character's words as they stream. Wrap an instance in `reactive()` to render it.
 */
export class OverlayCaptions {
  turn: string | null = null
  /** The viewers this turn answers (a viewer turn), else empty. */
  viewers: Viewer[] = []
  /** The streamer's words, when the turn is not a viewer turn. */
  user = ''
  /** The character's words so far, cleaned for display. */
  bot = ''
  /** The turn has ended (completed or interrupted): the caption may fade. */
  ended = false
  interrupted = false
  private raw = ''
  private deltaTurns = new Set<string>()

  get empty(): boolean {
    return !this.bot && !this.user && this.viewers.length === 0
  }

  /** Bumped whenever the caption changed in a way that should be shown. */
  revision = 0

  /** Apply one server frame; true when the caption changed in a way that should be shown. */
  apply(frame: ServerFrame): boolean {
    const before = this.revision
    dispatchFrame(frame, [this.frameHandlers()])
    return this.revision !== before
  }

  /** What each server frame does to the caption. Call on the reactive instance. */
  frameHandlers(): FrameHandlers {
    const at = (turn: string | undefined) => turn ?? null
    return {
      user_msg: (f) => {
        const viewers = f.data.viewers ?? []
        this.start(at(f.turn))
        this.viewers = viewers
        this.user = viewers.length ? '' : f.data.text
        this.revision += 1
      },
      bot_delta_chunk: (f) => {
        if (f.turn) this.deltaTurns.add(f.turn)
        this.write(at(f.turn), f.data.text)
      },
      // Sentences repeat what the deltas said; use them only from a server that sends no deltas.
      bot_text_chunk: (f) => {
        if (!(f.turn && this.deltaTurns.has(f.turn))) this.write(at(f.turn), f.data.text)
      },
      bot_msg: (f) => {
        if (at(f.turn) !== this.turn || this.ended) this.start(at(f.turn))
        this.raw = f.data.text
        this.bot = captionText(this.raw)
        this.revision += 1
      },
      stop_play: (f) => {
        if (f.turn && f.turn !== this.turn) return
        this.interrupted = true
        this.ended = true
      },
      end: (f) => {
        if (at(f.turn) !== this.turn) return
        this.ended = true
        if (f.data?.interrupted) this.interrupted = true
        else if (!this.raw && f.data?.text) {
          this.raw = f.data.text
          this.bot = captionText(this.raw)
          this.revision += 1
        }
      },
    }
  }

  /** Forget the caption (after it faded out). */
  clear(): void {
    this.start(null)
  }

  private start(turn: string | null): void {
    this.turn = turn
    this.viewers = []
    this.user = ''
    this.raw = ''
    this.bot = ''
    this.ended = false
    this.interrupted = false
    if (this.deltaTurns.size > 50) this.deltaTurns.clear()
  }

  private write(turn: string | null, text: string): void {
    // Text of another turn (e.g. one that had no user_msg) starts a caption of its own.
    if (turn !== this.turn) this.start(turn)
    else if (this.ended) return // nothing of a finished turn follows its end
    this.raw += text
    this.bot = captionText(this.raw)
    this.revision += 1
  }

}
