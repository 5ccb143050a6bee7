import { getCurrentScope, onScopeDispose, shallowRef } from 'vue'
import { sharedAudioContext } from '../audio/context'
import { levelFromRms, rms } from '../audio/pcm'
import { AudioScheduler, type ClipMeta, type SchedulerLog } from '../audio/scheduler'

export interface AudioPlayerOptions {
  /** @default the page's shared AudioContext */
  context?: () => AudioContext
  /** Receives `scheduled` / `played` / `dropped` / `stopped` / `decode_error` records. */
  log?: SchedulerLog
  /** Level meter refresh period in ms. @default 40 */
  meterMs?: number
}

/**
 * Plays the bot's per-sentence clips gaplessly, per turn, and meters the output level.
 * `drop(turn)` stops a turn for real and discards anything of it still to come.
 */
export function useAudioPlayer(opts: AudioPlayerOptions = {}) {
  const getContext = opts.context ?? sharedAudioContext
  /** Output level 0..1 (smoothed) while audio plays. */
  const level = shallowRef(0)
  /** True while scheduled audio has not finished. */
  const playing = shallowRef(false)
  /** True while playback is paused (the user speaks over the answer; the server decides). */
  const paused = shallowRef(false)

  let scheduler: AudioScheduler | null = null
  let analyser: AnalyserNode | null = null
  let samples: Float32Array<ArrayBuffer> | null = null
  let meter: ReturnType<typeof setInterval> | null = null

  function ensure(): AudioScheduler {
    if (scheduler) return scheduler
    const ctx = getContext()
    const gain = ctx.createGain()
    analyser = ctx.createAnalyser()
    analyser.fftSize = 1024
    samples = new Float32Array(analyser.fftSize)
    gain.connect(analyser)
    analyser.connect(ctx.destination)
    scheduler = new AudioScheduler(ctx, gain, opts.log)
    return scheduler
  }

  function tick(): void {
    const active = scheduler?.isPlaying() ?? false
    playing.value = active
    let target = 0
    if (active && analyser && samples) {
      analyser.getFloatTimeDomainData(samples)
      target = levelFromRms(rms(samples))
    }
    level.value = level.value * 0.5 + target * 0.5
    if (!active && level.value < 0.01) stopMeter()
  }

  function startMeter(): void {
    if (meter === null) meter = setInterval(tick, opts.meterMs ?? 40)
    tick()
  }

  function stopMeter(): void {
    if (meter !== null) clearInterval(meter)
    meter = null
    level.value = 0
    playing.value = false
  }

  /** Queue one clip (WAV bytes unless meta.format says otherwise) for `turn`. */
  async function enqueue(turn: string, bytes: Uint8Array, meta: ClipMeta = {}): Promise<void> {
    await ensure().enqueue(turn, bytes, meta)
    startMeter()
  }

  /** Stop `turn` now; later clips of it are discarded. Returns the ms that were played. */
  function drop(turn: string): number {
    const s = ensure()
    const played = s.drop(turn)
    paused.value = s.isPaused()
    if (s.isPlaying()) startMeter()
    else tick()
    return played
  }

  function stopAll(): void {
    scheduler?.stopAll()
    paused.value = false
    tick()
  }

  /** Hold playback now, where it is; clips that arrive meanwhile wait too. */
  function pause(turn: string): void {
    ensure().pause(turn)
    paused.value = true
    tick()
  }

  function resume(): void {
    scheduler?.resume()
    paused.value = scheduler?.isPaused() ?? false
    startMeter()
  }

  const playedMs = (turn: string): number => scheduler?.playedMs(turn) ?? 0
  const isDead = (turn: string): boolean => scheduler?.isDead(turn) ?? false

  if (getCurrentScope()) onScopeDispose(() => {
    stopAll()
    stopMeter()
  })

  return { enqueue, drop, stopAll, pause, resume, playedMs, isDead, level, playing, paused }
}

export type AudioPlayer = ReturnType<typeof useAudioPlayer>
