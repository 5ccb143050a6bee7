import { dispatchFrame, type FrameHandlers } from './frames'
import type { HistoryMessage } from './history'
import { notHeardReason, type EndData, type HelloData, type NotHeardReason, type ServerFrame, type ServerState, type Timeline, type Viewer } from './protocol'

export interface TranscriptEntry {
  id: number
  role: 'user' | 'bot' | 'notice'
  turn?: string
  /** Full text (for the bot: everything it wrote, streamed from deltas). */
  text: string
  /** For an interrupted bot answer: the part the user actually heard. */
  heard?: string
  interrupted?: boolean
  /** The bot is still writing this answer. */
  pending?: boolean
  /** For notices: an error code from the server. */
  code?: string
  /** For a turn made from viewer input (live rooms): the viewers it answers. */
  viewers?: Viewer[]
  ts: number
}

export interface Caption {
  turn: string | null
  user: string
  bot: string
  /** For a viewer turn: the viewers instead of `user` (which is the prompt the character was given). */
  viewers?: Viewer[]
}

export interface TurnMetrics {
  turn?: string
  timeline: Timeline
  data: Record<string, unknown>
}

const MAX_ENTRIES = 300

/**
 * What the page shows about the conversation, updated frame by frame (no audio, no I/O).
 * Wrap an instance in `reactive()` to render it.
 */
export class Conversation {
  entries: TranscriptEntry[] = []
  caption: Caption = { turn: null, user: '', bot: '' }
  serverState: ServerState = 'listening'
  userSpeaking = false
  currentTurn: string | null = null
  metrics: TurnMetrics | null = null
  hello: HelloData | null = null
  /** Bumped on `transcript_empty` so the view can flash a hint; `notHeardReason` says which. */
  notHeardCount = 0
  notHeardReason: NotHeardReason = 'empty_transcript'
  /** The server paused the answer's playback while it decides whether the user meant to interrupt. */
  paused = false
  private nextId = 1
  /** The first entry id of the current connection (entries before it came from an earlier one). */
  private connectedAt = 1
  private deltaTurns = new Set<string>()

  /** Apply one frame (the page routes frames through `frameHandlers()` with the other views). */
  apply(frame: ServerFrame): void {
    dispatchFrame(frame, [this.frameHandlers()])
  }

  /** What each server frame does to the conversation. Call on the reactive instance. */
  frameHandlers(): FrameHandlers {
    return {
      hello: (f) => this.connected(f.data),
      state: (f) => {
        this.serverState = f.data.state
        if (f.data.state !== 'listening') this.userSpeaking = false
      },
      vad: (f) => (this.userSpeaking = f.data.state === 'speech_start'),
      user_msg: (f) => this.userMessage(f.turn, f.data.text, f.data.viewers),
      transcript_empty: (f) => {
        this.userSpeaking = false
        // Never silent: an utterance dropped (no words, the character's own echo, a backchannel or a
        // noise that paused the answer) is shown as such.
        this.notHeardReason = notHeardReason(f.data?.reason)
        this.notHeardCount += 1
      },
      pause_play: () => (this.paused = true),
      resume_play: () => (this.paused = false),
      bot_delta_chunk: (f) => {
        if (f.turn) this.deltaTurns.add(f.turn)
        this.appendBot(f.turn, f.data.text)
      },
      // Sentences are also streamed as deltas; use them only when a server sends no deltas.
      bot_text_chunk: (f) => {
        if (!f.turn || !this.deltaTurns.has(f.turn)) this.appendBot(f.turn, f.data.text)
      },
      bot_msg: (f) => {
        this.botEntry(f.turn, true).text = f.data.text
        this.setCaptionBot(f.turn, f.data.text)
      },
      stop_play: (f) => {
        this.paused = false
        if (f.turn) this.stopped(f.turn)
      },
      end: (f) => this.endTurn(f.turn, f.data ?? {}),
      metrics: (f) => (this.metrics = { turn: f.turn, timeline: f.data.timeline ?? {}, data: f.data }),
      error: (f) => this.push({ role: 'notice', turn: f.turn, text: f.data ?? f.code ?? 'error', code: f.code }),
    }
  }

  /** The answer of `turn` was cut off (its end says what was heard). */
  stopped(turn: string): void {
    const entry = this.botEntry(turn, false)
    if (entry) entry.interrupted = true
  }

  /**
   * The conversation's earlier turns from the host's history, read when a connection opened:
   * they replace what the page showed from before that connection; turns since then stay.
   */
  loadHistory(earlier: HistoryMessage[]): void {
    const live = this.entries.filter((e) => e.id >= this.connectedAt)
    const seen = new Set(live.map((e) => `${e.role}\n${e.text}`))
    const restored = earlier
      .filter((m) => !seen.has(`${m.role}\n${m.text}`)) // saved while the history was on its way
      .map((m) => ({ id: this.nextId++, role: m.role, text: m.text, interrupted: m.interrupted || undefined, ts: m.ts }))
    this.entries = [...restored, ...live].slice(-MAX_ENTRIES)
  }

  /** Another conversation starts (e.g. the page joined a room): forget this one. */
  clear(): void {
    this.reset()
    this.entries = []
    this.caption = { turn: null, user: '', bot: '' }
    this.currentTurn = null
    this.metrics = null
    this.hello = null
    this.deltaTurns.clear()
  }

  /** The connection dropped: nothing is in flight any more. */
  reset(): void {
    this.serverState = 'listening'
    this.userSpeaking = false
    this.paused = false
    for (const e of this.entries) e.pending = false
  }

  private startTurn(turn: string | undefined): void {
    if (turn) this.currentTurn = turn
  }

  private appendBot(turn: string | undefined, text: string): void {
    const entry = this.botEntry(turn, true)
    entry.text += text
    this.setCaptionBot(turn, entry.text)
  }

  private setCaptionBot(turn: string | undefined, text: string): void {
    if (this.caption.turn !== (turn ?? null)) this.caption = { turn: turn ?? null, user: '', bot: '' }
    this.caption.bot = text
  }

  private connected(hello: HelloData): void {
    this.hello = hello
    this.connectedAt = this.nextId
  }

  private userMessage(turn: string | undefined, text: string, viewers: Viewer[] | undefined): void {
    this.userSpeaking = false
    this.startTurn(turn)
    const shown = viewers?.length ? viewers : undefined
    this.caption = { turn: turn ?? null, user: text, bot: '', viewers: shown }
    this.push({ role: 'user', turn, text, viewers: shown })
  }

  private endTurn(turn: string | undefined, data: EndData): void {
    let entry = this.botEntry(turn, false)
    if (!entry && data.text) entry = this.botEntry(turn, true)
    if (!entry) return
    entry.pending = false
    if (data.interrupted) {
      entry.interrupted = true
      // What the user heard, as the history keeps it (with its "…" cut mark); absent from older servers.
      if (typeof data.heard === 'string') entry.heard = data.heard.replace(/…$/, '')
    } else if (!entry.text && data.text) {
      entry.text = data.text
    }
  }

  private botEntry(turn: string | undefined, create: true): TranscriptEntry
  private botEntry(turn: string | undefined, create: false): TranscriptEntry | undefined
  private botEntry(turn: string | undefined, create: boolean): TranscriptEntry | undefined {
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const e = this.entries[i]
      if (e.role === 'bot' && e.turn === turn) return e
      if (turn === undefined && e.role === 'user') break
    }
    if (!create) return undefined
    this.startTurn(turn)
    return this.push({ role: 'bot', turn, text: '', pending: true })
  }

  private push(fields: Omit<TranscriptEntry, 'id' | 'ts'>): TranscriptEntry {
    this.entries.push({ id: this.nextId++, ts: Date.now(), ...fields })
    if (this.entries.length > MAX_ENTRIES) this.entries.splice(0, this.entries.length - MAX_ENTRIES)
    // Return the stored element (a reactive proxy when this instance is reactive).
    return this.entries[this.entries.length - 1]
  }
}
