import { parseWav, WavError } from './wav'
import { pcm16ToFloat } from './pcm'

/** How a clip is encoded; `wav` unless the server negotiated raw PCM16 chunks. */
export interface ClipMeta {
  seq?: number
  format?: string
  /** Sample rate of `pcm16` clips. @default 16000 */
  sampleRate?: number
}

export type SchedulerLog = (kind: string, fields: Record<string, unknown>) => void

type Ctx = Pick<BaseAudioContext, 'currentTime' | 'createBuffer' | 'createBufferSource' | 'decodeAudioData'>

interface Segment {
  source: AudioBufferSourceNode
  buffer: AudioBuffer
  /** Seconds into `buffer` where this segment starts. */
  offset: number
  start: number
  duration: number
  stopped: boolean
  info: Record<string, unknown>
}

/** Audio held while playback is paused: played from `offset` on resume. */
interface Held {
  turn: string
  buffer: AudioBuffer
  offset: number
  info: Record<string, unknown>
}

interface TurnRecord {
  segments: Segment[]
  /** Played ms frozen when the turn was dropped. */
  frozenMs: number | null
}

const MAX_TURNS = 32
const MAX_DEAD = 256

/**
 * Gapless, in-order playback of per-sentence clips on one AudioContext, grouped by turn.
 * Clips are decoded on a promise chain so a slow decode never lets a later clip overtake it;
 * each is scheduled at `nextStartTime`. A dropped turn is stopped at once, and any later
 * clip of it (already queued or still to come) is discarded.
 *
 * `pause(turn)` stops what plays at once and holds it (and every clip that arrives meanwhile)
 * with its position; `resume()` plays it on from there. Dropping the paused turn ends the pause.
 * The context itself never stops: the microphone shares it.
 */
export class AudioScheduler {
  /** Context time at which the last scheduled clip ends. */
  nextStartTime = 0
  private readonly turns = new Map<string, TurnRecord>()
  private readonly dead = new Set<string>()
  private chain: Promise<void> = Promise.resolve()
  private generation = 0
  /** While paused: the audio to play on resume, in order; and the turn the pause is for. */
  private held: Held[] | null = null
  private pausedFor: string | null = null

  constructor(
    private readonly ctx: Ctx,
    private readonly output: AudioNode,
    private readonly log: SchedulerLog = () => {},
    /** Seconds between scheduling and the start of a clip when nothing is playing. */
    private readonly leadSec = 0.03,
  ) {}

  isDead(turn: string): boolean {
    return this.dead.has(turn)
  }

  /** True while scheduled audio has not finished. */
  isPlaying(): boolean {
    return this.ctx.currentTime < this.nextStartTime
  }

  isPaused(): boolean {
    return this.held !== null
  }

  /** Stop playing now and hold everything not yet played (the server's `pause_play` for `turn`). */
  pause(turn: string): void {
    if (this.held) return
    const now = this.ctx.currentTime
    const rest: Array<Held & { start: number }> = []
    for (const [name, rec] of this.turns) {
      if (this.dead.has(name)) continue
      for (const seg of rec.segments) {
        if (seg.stopped || seg.start + seg.duration <= now) continue
        const played = Math.min(Math.max(now - seg.start, 0), seg.duration)
        rest.push({ turn: name, buffer: seg.buffer, offset: seg.offset + played, info: seg.info, start: seg.start })
        seg.duration = played // what it played counts; the rest is held
        this.stopSegment(seg)
      }
    }
    rest.sort((a, b) => a.start - b.start)
    this.held = rest.map(({ turn: t, buffer, offset, info }) => ({ turn: t, buffer, offset, info }))
    this.pausedFor = turn
    this.recomputeTail()
    this.log('paused', { turn, held: this.held.length })
  }

  /** Play on what the pause held, from where it stopped (the server's `resume_play`). */
  resume(): void {
    const held = this.held
    if (!held) return
    this.held = null
    this.pausedFor = null
    this.log('resumed', { clips: held.length })
    for (const h of held) if (!this.dead.has(h.turn)) this.schedule(h.turn, h.buffer, h.info, h.offset)
  }

  /** Queue one clip of `turn`; resolves when it has been scheduled (or discarded). */
  enqueue(turn: string, bytes: Uint8Array, meta: ClipMeta = {}): Promise<void> {
    const info = { turn, seq: meta.seq, bytes: bytes.byteLength }
    if (this.dead.has(turn)) {
      this.log('dropped', { ...info, reason: 'dead turn' })
      return Promise.resolve()
    }
    const gen = this.generation
    const stale = () => gen !== this.generation || this.dead.has(turn)
    this.chain = this.chain
      .then(async () => {
        if (stale()) return this.log('dropped', { ...info, reason: 'dead turn' })
        const buffer = await this.decode(bytes, meta)
        if (stale()) return this.log('dropped', { ...info, reason: 'dead turn' })
        if (buffer) this.schedule(turn, buffer, info)
      })
      .catch((err: unknown) => this.log('decode_error', { ...info, error: String(err) }))
    return this.chain
  }

  private async decode(bytes: Uint8Array, meta: ClipMeta): Promise<AudioBuffer | null> {
    let channels: Float32Array[]
    let rate: number
    if (meta.format === 'pcm16') {
      const aligned = bytes.slice(0, bytes.byteLength - (bytes.byteLength % 2))
      channels = [pcm16ToFloat(new Int16Array(aligned.buffer))]
      rate = meta.sampleRate ?? 16000
    } else {
      try {
        const wav = parseWav(bytes)
        channels = wav.channelData
        rate = wav.sampleRate
      } catch (err) {
        if (!(err instanceof WavError)) throw err
        // Not a WAV we parse (e.g. a provider returned mp3): let the browser decode it.
        return this.ctx.decodeAudioData(bytes.slice().buffer)
      }
    }
    if (!channels[0]?.length) return null
    const buffer = this.ctx.createBuffer(channels.length, channels[0].length, rate)
    channels.forEach((data, c) => buffer.copyToChannel(data as Float32Array<ArrayBuffer>, c))
    return buffer
  }

  private schedule(turn: string, buffer: AudioBuffer, info: Record<string, unknown>, offset = 0): void {
    if (this.held) {
      this.held.push({ turn, buffer, offset, info })
      return this.log('held', info)
    }
    const now = this.ctx.currentTime
    const start = Math.max(now + this.leadSec, this.nextStartTime)
    const duration = buffer.duration - offset
    const source = this.ctx.createBufferSource()
    source.buffer = buffer
    source.connect(this.output)
    const segment: Segment = { source, buffer, offset, start, duration, stopped: false, info }
    const durationMs = Math.round(duration * 1000)
    source.onended = () => {
      if (!segment.stopped) this.log('played', { ...info, durationMs })
    }
    if (offset > 0) source.start(start, offset)
    else source.start(start)
    this.nextStartTime = start + duration
    this.record(turn).segments.push(segment)
    this.log('scheduled', { ...info, durationMs, startsInMs: Math.round((start - now) * 1000) })
  }

  private record(turn: string): TurnRecord {
    let rec = this.turns.get(turn)
    if (!rec) {
      rec = { segments: [], frozenMs: null }
      this.turns.set(turn, rec)
      if (this.turns.size > MAX_TURNS) this.turns.delete(this.turns.keys().next().value as string)
    }
    return rec
  }

  /** Milliseconds of `turn`'s audio that have actually played so far. */
  playedMs(turn: string): number {
    const rec = this.turns.get(turn)
    if (!rec) return 0
    if (rec.frozenMs !== null) return rec.frozenMs
    const now = this.ctx.currentTime
    const sec = rec.segments.reduce((sum, s) => sum + Math.min(Math.max(now - s.start, 0), s.duration), 0)
    return Math.round(sec * 1000)
  }

  /** Stop `turn` now and discard its queued and future clips. Returns the ms that were played. */
  drop(turn: string): number {
    const played = this.playedMs(turn)
    this.dead.add(turn)
    if (this.dead.size > MAX_DEAD) this.dead.delete(this.dead.values().next().value as string)
    const rec = this.turns.get(turn)
    if (rec && rec.frozenMs === null) {
      rec.frozenMs = played
      for (const seg of rec.segments) this.stopSegment(seg)
      this.log('stopped', { turn, playedMs: played })
    }
    if (this.held) this.held = this.held.filter((h) => h.turn !== turn)
    this.recomputeTail()
    if (this.pausedFor === turn) this.resume() // cut while paused: what comes next plays
    return played
  }

  /** Stop everything (e.g. the connection was replaced); queued clips are discarded. */
  stopAll(): void {
    this.generation += 1
    this.held = null
    this.pausedFor = null
    for (const turn of [...this.turns.keys()]) if (!this.dead.has(turn)) this.drop(turn)
    this.nextStartTime = 0
  }

  private stopSegment(seg: Segment): void {
    if (seg.stopped) return
    seg.stopped = true
    try {
      seg.source.stop()
    } catch {
      // never started or already stopped
    }
    seg.source.disconnect()
  }

  private recomputeTail(): void {
    let tail = 0
    for (const rec of this.turns.values()) {
      for (const s of rec.segments) if (!s.stopped) tail = Math.max(tail, s.start + s.duration)
    }
    this.nextStartTime = tail
  }
}
