import { beforeEach, describe, expect, it } from 'vitest'
import { AudioScheduler } from '../src/audio/scheduler'
import { encodeWavPcm16 } from '../src/audio/wav'
import { FakeAudioContext, flush } from './fakes'

/** A WAV clip of `ms` milliseconds at 16 kHz. */
/** Seconds rounded to the ms (context times are sums of floats). */
const ms = (sec: number | null) => Math.round((sec ?? NaN) * 1000) / 1000
const clip = (ms: number) => encodeWavPcm16(new Int16Array((16000 * ms) / 1000).fill(1000), 16000)

let ctx: FakeAudioContext
let log: Array<{ kind: string } & Record<string, unknown>>
let sched: AudioScheduler

beforeEach(() => {
  ctx = new FakeAudioContext()
  log = []
  sched = new AudioScheduler(ctx as never, {} as AudioNode, (kind, fields) => log.push({ kind, ...fields }), 0.05)
})

describe('AudioScheduler', () => {
  it('schedules clips back to back without gaps', async () => {
    ctx.currentTime = 1
    await sched.enqueue('t1', clip(500), { seq: 1 })
    await sched.enqueue('t1', clip(250), { seq: 2 })
    expect(ctx.sources.map((s) => s.startedAt)).toEqual([1.05, 1.55])
    expect(sched.nextStartTime).toBeCloseTo(1.8, 9)
    expect(sched.isPlaying()).toBe(true)
    expect(log.filter((e) => e.kind === 'scheduled').map((e) => [e.seq, e.durationMs])).toEqual([
      [1, 500],
      [2, 250],
    ])
  })

  it('starts a clip at once (plus the lead) when the queue ran dry', async () => {
    await sched.enqueue('t1', clip(100))
    ctx.currentTime = 5
    await sched.enqueue('t1', clip(100))
    expect(ctx.sources[1].startedAt).toBe(5.05)
  })

  it('keeps arrival order when a clip needs the slow browser decoder', async () => {
    const notWav = new TextEncoder().encode('mp3 frames')
    const first = sched.enqueue('t1', notWav, { seq: 1 })
    const second = sched.enqueue('t1', clip(200), { seq: 2 })
    await flush()
    expect(ctx.sources).toHaveLength(0) // the WAV waits behind the pending decode
    ctx.pendingDecodes[0].resolve(ctx.createBuffer(1, 8000, 16000))
    await Promise.all([first, second])
    expect(ctx.sources.map((s) => s.buffer?.duration)).toEqual([0.5, 0.2])
    expect(ctx.sources[1].startedAt).toBeCloseTo(ctx.sources[0].startedAt! + 0.5, 9)
  })

  it('plays raw pcm16 clips when the format says so', async () => {
    await sched.enqueue('t1', new Uint8Array(Int16Array.from([1, 2, 3, 4]).buffer), { format: 'pcm16', sampleRate: 24000 })
    expect(ctx.sources[0].buffer?.sampleRate).toBe(24000)
    expect(ctx.sources[0].buffer?.length).toBe(4)
  })

  it('counts only the audio that has actually played', async () => {
    await sched.enqueue('t1', clip(500))
    await sched.enqueue('t1', clip(500))
    expect(sched.playedMs('t1')).toBe(0)
    ctx.currentTime = 0.3
    expect(sched.playedMs('t1')).toBe(250)
    ctx.currentTime = 0.8
    expect(sched.playedMs('t1')).toBe(750)
    ctx.currentTime = 9
    expect(sched.playedMs('t1')).toBe(1000)
    expect(sched.playedMs('unknown')).toBe(0)
  })

  it('drop() stops the turn, freezes its played time and discards its later clips', async () => {
    await sched.enqueue('t1', clip(500), { seq: 1 })
    await sched.enqueue('t1', clip(500), { seq: 2 })
    ctx.currentTime = 0.45
    expect(sched.drop('t1')).toBe(400)
    expect(ctx.sources.every((s) => s.stopped)).toBe(true)
    expect(sched.isPlaying()).toBe(false)
    ctx.currentTime = 2
    expect(sched.playedMs('t1')).toBe(400)
    await sched.enqueue('t1', clip(500), { seq: 3 })
    expect(ctx.sources).toHaveLength(2)
    expect(log.find((e) => e.kind === 'dropped')).toMatchObject({ turn: 't1', seq: 3 })
    expect(log.find((e) => e.kind === 'stopped')).toMatchObject({ turn: 't1', playedMs: 400 })
    expect(log.some((e) => e.kind === 'played')).toBe(false)
  })

  it('discards clips of a dropped turn that were still waiting to decode', async () => {
    const pending = sched.enqueue('t1', new TextEncoder().encode('mp3'), { seq: 1 })
    const queued = sched.enqueue('t1', clip(100), { seq: 2 })
    await flush()
    sched.drop('t1')
    ctx.pendingDecodes[0].resolve(ctx.createBuffer(1, 1600, 16000))
    await Promise.all([pending, queued])
    expect(ctx.sources).toHaveLength(0)
    expect(log.filter((e) => e.kind === 'dropped').map((e) => e.seq)).toEqual([1, 2])
  })

  it('a dropped turn does not disturb the next one', async () => {
    await sched.enqueue('t1', clip(1000))
    ctx.currentTime = 0.2
    sched.drop('t1')
    await sched.enqueue('t2', clip(300))
    expect(ctx.sources[1].startedAt).toBeCloseTo(0.25, 9)
    expect(sched.isDead('t2')).toBe(false)
  })

  it('marks a turn dead even before any of its audio arrived', async () => {
    expect(sched.drop('t9')).toBe(0)
    await sched.enqueue('t9', clip(100))
    expect(ctx.sources).toHaveLength(0)
  })

  it('stopAll() silences everything, including clips queued before it', async () => {
    await sched.enqueue('a', clip(500))
    const late = sched.enqueue('b', new TextEncoder().encode('mp3'))
    await flush()
    sched.stopAll()
    ctx.pendingDecodes[0].resolve(ctx.createBuffer(1, 1600, 16000))
    await late
    expect(ctx.sources).toHaveLength(1)
    expect(ctx.sources[0].stopped).toBe(true)
    expect(sched.nextStartTime).toBe(0)
  })

  it('pause() holds the clip at its position and the queued ones; resume() plays on from there, gaplessly', async () => {
    await sched.enqueue('t1', clip(500), { seq: 1 }) // 0.05 .. 0.55
    await sched.enqueue('t1', clip(500), { seq: 2 }) // 0.55 .. 1.05
    ctx.currentTime = 0.25
    sched.pause('t1')
    expect(ctx.sources.every((s) => s.stopped)).toBe(true)
    expect(sched.isPaused()).toBe(true)
    expect(sched.isPlaying()).toBe(false)
    ctx.currentTime = 3 // paused for 2.75 s: none of it counts as played
    expect(sched.playedMs('t1')).toBe(200)
    sched.resume()
    expect(ctx.sources.slice(2).map((s) => [ms(s.startedAt), ms(s.offset)])).toEqual([
      [3.05, 0.2],
      [3.35, 0],
    ])
    expect(ctx.sources[3].startedAt).toBeCloseTo(3.05 + 0.3, 9)
    ctx.currentTime = 3.15
    expect(sched.playedMs('t1')).toBe(300)
    expect(log.filter((e) => e.kind === 'played')).toEqual([]) // the held clip was not "played" when stopped
    expect(log.map((e) => e.kind)).toContain('resumed')
  })

  it('clips arriving while paused wait for resume(); several pauses add up', async () => {
    await sched.enqueue('t1', clip(400))
    ctx.currentTime = 0.15
    sched.pause('t1')
    await sched.enqueue('t1', clip(200), { seq: 2 })
    expect(ctx.sources).toHaveLength(1)
    ctx.currentTime = 1
    sched.resume() // 0.3 s left of the first clip, then the second
    expect(ctx.sources.slice(1).map((s) => [ms(s.startedAt), ms(s.offset)])).toEqual([
      [1.05, 0.1],
      [1.35, 0],
    ])
    ctx.currentTime = 1.25
    sched.pause('t1')
    ctx.currentTime = 2
    expect(sched.playedMs('t1')).toBe(300)
    sched.resume()
    expect(ctx.sources.slice(3).map((s) => ms(s.offset))).toEqual([0.3, 0])
  })

  it('dropping the paused turn ends the pause: the next turn plays at once', async () => {
    await sched.enqueue('t1', clip(1000))
    ctx.currentTime = 0.25
    sched.pause('t1')
    await sched.enqueue('t1', clip(300))
    expect(sched.drop('t1')).toBe(200)
    expect(sched.isPaused()).toBe(false)
    await sched.enqueue('t2', clip(300))
    expect(ctx.sources).toHaveLength(2)
    expect(ctx.sources[1].startedAt).toBeCloseTo(0.3, 9)
    expect(sched.playedMs('t1')).toBe(200)
  })

  it('logs "played" when a clip ends by itself', async () => {
    await sched.enqueue('t1', clip(100), { seq: 4 })
    ctx.sources[0].onended?.()
    expect(log.at(-1)).toMatchObject({ kind: 'played', turn: 't1', seq: 4, durationMs: 100 })
  })

  it('reports a clip it cannot decode and goes on with the next', async () => {
    const bad = sched.enqueue('t1', new TextEncoder().encode('junk'))
    await flush()
    ctx.pendingDecodes[0].resolve(Promise.reject(new Error('EncodingError')) as never)
    await bad
    await sched.enqueue('t1', clip(100))
    expect(log.some((e) => e.kind === 'decode_error')).toBe(true)
    expect(ctx.sources).toHaveLength(1)
  })
})
