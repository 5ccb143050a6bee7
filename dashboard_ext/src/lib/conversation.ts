import { heardPrefix, type SpokenSentence } from './heard'
import type { HelloData, ServerFrame, ServerState, Timeline, Viewer } from './protocol'

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
  /** Bumped on `transcript_empty` so the view can flash a hint. */
  notHeardCount = 0
  private nextId = 1
  private deltaTurns = new Set<string>()
  /** Per turn: the voiced sentences and their audio lengths, to work out what was heard. */
  private spoken = new Map<string, SpokenSentence[]>()

  apply(frame: ServerFrame): void {
    const turn = 'turn' in frame ? frame.turn : undefined
    switch (frame.t) {
      case 'hello':
        this.hello = frame.data
        break
      case 'state':
        this.serverState = frame.data.state
        if (frame.data.state !== 'listening') this.userSpeaking = false
        break
      case 'vad':
        this.userSpeaking = frame.data.state === 'speech_start'
        break
      case 'user_msg': {
        this.userSpeaking = false
        this.startTurn(turn)
        const viewers = frame.data.viewers?.length ? frame.data.viewers : undefined
        this.caption = { turn: turn ?? null, user: frame.data.text, bot: '', viewers }
        this.push({ role: 'user', turn, text: frame.data.text, viewers })
        break
      }
      case 'transcript_empty':
        this.userSpeaking = false
        // "echo" means the microphone only heard the character itself: nothing to tell the user.
        if (frame.data?.reason !== 'echo') this.notHeardCount += 1
        break
      case 'bot_delta_chunk':
        if (turn) this.deltaTurns.add(turn)
        this.appendBot(turn, frame.data.text)
        break
      case 'bot_text_chunk':
        this.sentence(turn, frame.seq).text += frame.data.text
        // Sentences are also streamed as deltas; use them only when a server sends no deltas.
        if (!turn || !this.deltaTurns.has(turn)) this.appendBot(turn, frame.data.text)
        break
      case 'response':
        this.sentence(turn, frame.seq).ms += frame.duration_ms ?? 0
        break
      case 'bot_msg': {
        const entry = this.botEntry(turn, true)
        entry.text = frame.data.text
        this.setCaptionBot(turn, frame.data.text)
        break
      }
      case 'stop_play':
        if (turn) {
          const entry = this.botEntry(turn, false)
          if (entry) entry.interrupted = true
        }
        break
      case 'end':
        this.endTurn(turn, frame.data ?? {})
        break
      case 'metrics':
        this.metrics = { turn, timeline: frame.data.timeline ?? {}, data: frame.data }
        break
      case 'error':
        this.push({ role: 'notice', turn, text: frame.data ?? frame.code ?? 'error', code: frame.code })
        break
    }
  }

  /** Playback of `turn` was stopped after `playedMs`: mark its answer interrupted and what was heard. */
  stopped(turn: string, playedMs: number): void {
    const entry = this.botEntry(turn, false)
    if (!entry) return
    entry.interrupted = true
    const heard = heardPrefix(entry.text, this.spoken.get(turn) ?? [], playedMs)
    if (heard !== null) entry.heard = heard
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
    this.spoken.clear()
  }

  /** The connection dropped: nothing is in flight any more. */
  reset(): void {
    this.serverState = 'listening'
    this.userSpeaking = false
    for (const e of this.entries) e.pending = false
  }

  private sentence(turn: string | undefined, seq: number | undefined): SpokenSentence {
    const key = turn ?? ''
    let list = this.spoken.get(key)
    if (!list) {
      list = []
      this.spoken.set(key, list)
      if (this.spoken.size > 50) this.spoken.delete(this.spoken.keys().next().value as string)
    }
    let s = list.find((x) => x.seq === (seq ?? -1))
    if (!s) list.push((s = { seq: seq ?? -1, text: '', ms: 0 }))
    return s
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

  private endTurn(turn: string | undefined, data: { interrupted?: boolean; text?: string }): void {
    let entry = this.botEntry(turn, false)
    if (!entry && data.text) entry = this.botEntry(turn, true)
    if (!entry) return
    entry.pending = false
    if (data.interrupted) {
      entry.interrupted = true
      // This server leaves `text` empty on interrupts; an older one may send the heard part.
      if (data.text && entry.heard === undefined) entry.heard = data.text
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
