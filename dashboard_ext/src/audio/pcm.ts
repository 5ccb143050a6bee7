/**
 * PCM helpers shared by the capture worklet and the main thread.
 * Pure functions and small classes: no DOM, no Web Audio, testable in Node.
 */

/** Output rate of the microphone stream the server expects. */
export const TARGET_SAMPLE_RATE = 16000

/**
 * Length of each microphone frame sent to the server, in ms. 60 ms (1920 bytes of PCM16 at
 * 16 kHz) is 17 WebSocket frames a second instead of 50 at 20 ms: the per-frame cost is what
 * limits how many sessions one server holds, and 60 ms is still well inside the VAD's reaction time.
 */
export const MIC_FRAME_MS = 60

/** Samples in one frame of `ms` milliseconds at `rate` Hz (60 ms at 16 kHz = 960). */
export function frameSamples(ms: number, rate: number = TARGET_SAMPLE_RATE): number {
  return Math.round((rate * ms) / 1000)
}

/** Float [-1, 1] samples to signed 16-bit little-endian PCM (clamped). */
export function floatTo16BitPcm(input: Float32Array): Int16Array {
  const out = new Int16Array(input.length)
  for (let i = 0; i < input.length; i++) {
    const s = Math.max(-1, Math.min(1, input[i]))
    out[i] = s < 0 ? Math.round(s * 0x8000) : Math.round(s * 0x7fff)
  }
  return out
}

/** Signed 16-bit PCM to float [-1, 1). */
export function pcm16ToFloat(input: Int16Array): Float32Array {
  const out = new Float32Array(input.length)
  for (let i = 0; i < input.length; i++) out[i] = input[i] / 0x8000
  return out
}

/** Root mean square of a block of float samples. */
export function rms(samples: ArrayLike<number>): number {
  if (samples.length === 0) return 0
  let sum = 0
  for (let i = 0; i < samples.length; i++) sum += samples[i] * samples[i]
  return Math.sqrt(sum / samples.length)
}

/**
 * Map an RMS value to a 0..1 display level on a log (dB) scale:
 * -60 dBFS and below is 0, -10 dBFS and above is 1.
 */
export function levelFromRms(value: number): number {
  if (value <= 0) return 0
  const db = 20 * Math.log10(value)
  return Math.max(0, Math.min(1, (db + 60) / 50))
}

/** Windowed-sinc (Blackman) low-pass FIR, normalised to unity gain at DC. */
export function lowPassTaps(cutoffHz: number, sampleRate: number, taps: number): Float32Array {
  const h = new Float32Array(taps)
  const fc = cutoffHz / sampleRate
  const mid = (taps - 1) / 2
  let sum = 0
  for (let i = 0; i < taps; i++) {
    const x = i - mid
    const sinc = x === 0 ? 2 * fc : Math.sin(2 * Math.PI * fc * x) / (Math.PI * x)
    const w = 0.42 - 0.5 * Math.cos((2 * Math.PI * i) / (taps - 1)) + 0.08 * Math.cos((4 * Math.PI * i) / (taps - 1))
    h[i] = sinc * w
    sum += h[i]
  }
  for (let i = 0; i < taps; i++) h[i] /= sum
  return h
}

/**
 * Streaming resampler: low-pass at the input rate, then read the filtered signal
 * at fractional positions (linear interpolation). Chunk boundaries are seamless:
 * feeding a signal in pieces gives the same samples as feeding it whole.
 */
export class Downsampler {
  readonly step: number
  private readonly taps: Float32Array | null
  private history: Float32Array
  private pos: number

  constructor(
    readonly inputRate: number,
    readonly outputRate: number = TARGET_SAMPLE_RATE,
    tapCount = 63,
  ) {
    this.step = inputRate / outputRate
    const cutoff = (Math.min(inputRate, outputRate) / 2) * 0.9
    this.taps = inputRate === outputRate ? null : lowPassTaps(cutoff, inputRate, tapCount)
    const keep = this.taps ? this.taps.length : 1
    this.history = new Float32Array(keep)
    this.pos = keep
  }

  /** Resample one block of input; returns the output samples it completes. */
  process(input: Float32Array): Float32Array {
    if (!this.taps) return input.slice()
    const h = this.taps
    const keep = h.length
    const buf = new Float32Array(keep + input.length)
    buf.set(this.history, 0)
    buf.set(input, keep)
    const filtered = (n: number): number => {
      let acc = 0
      for (let k = 0; k < keep; k++) acc += h[k] * buf[n - k]
      return acc
    }
    const out: number[] = []
    while (Math.floor(this.pos) + 1 < buf.length) {
      const i = Math.floor(this.pos)
      const frac = this.pos - i
      const a = filtered(i)
      out.push(frac === 0 ? a : a + (filtered(i + 1) - a) * frac)
      this.pos += this.step
    }
    this.pos -= buf.length - keep
    this.history = buf.slice(buf.length - keep)
    return Float32Array.from(out)
  }
}

/**
 * Collects samples into fixed-size frames (e.g. 960 samples = 60 ms at 16 kHz).
 * `push` returns every frame that became complete.
 */
export class FrameAssembler {
  private buf: Float32Array
  private fill = 0

  constructor(readonly frameSize: number) {
    this.buf = new Float32Array(frameSize)
  }

  push(samples: Float32Array): Float32Array[] {
    const frames: Float32Array[] = []
    let offset = 0
    while (offset < samples.length) {
      const n = Math.min(this.frameSize - this.fill, samples.length - offset)
      this.buf.set(samples.subarray(offset, offset + n), this.fill)
      this.fill += n
      offset += n
      if (this.fill === this.frameSize) {
        frames.push(this.buf)
        this.buf = new Float32Array(this.frameSize)
        this.fill = 0
      }
    }
    return frames
  }
}
