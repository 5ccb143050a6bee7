import { describe, expect, it } from 'vitest'
import {
  Downsampler,
  FrameAssembler,
  MIC_FRAME_MS,
  floatTo16BitPcm,
  frameSamples,
  levelFromRms,
  pcm16ToFloat,
  rms,
} from '../src/audio/pcm'

function sine(freq: number, rate: number, seconds: number, amp = 0.5): Float32Array {
  const n = Math.round(rate * seconds)
  return Float32Array.from({ length: n }, (_, i) => amp * Math.sin((2 * Math.PI * freq * i) / rate))
}

/** Feed a signal in 128-sample render quanta, like an AudioWorklet does. */
function inQuanta(ds: Downsampler, signal: Float32Array, quantum = 128): Float32Array {
  const parts: number[] = []
  for (let i = 0; i < signal.length; i += quantum) parts.push(...ds.process(signal.subarray(i, i + quantum)))
  return Float32Array.from(parts)
}

describe('PCM16 conversion', () => {
  it('scales, rounds and clamps floats to int16', () => {
    expect([...floatTo16BitPcm(Float32Array.from([0, 1, -1, 0.5, -0.5, 2, -3]))]).toEqual([
      0, 32767, -32768, 16384, -16384, 32767, -32768,
    ])
  })

  it('round-trips within one step', () => {
    const x = Float32Array.from([0.25, -0.75, 0.001])
    const back = pcm16ToFloat(floatTo16BitPcm(x))
    back.forEach((v, i) => expect(Math.abs(v - x[i])).toBeLessThan(1 / 16384))
  })

  it('measures RMS and maps it to a 0..1 level', () => {
    expect(rms(new Float32Array(100))).toBe(0)
    expect(rms(sine(440, 16000, 0.5, 1))).toBeCloseTo(Math.SQRT1_2, 2)
    expect(levelFromRms(0)).toBe(0)
    expect(levelFromRms(0.0005)).toBe(0)
    expect(levelFromRms(1)).toBe(1)
    expect(levelFromRms(0.01)).toBeCloseTo(0.4, 5) // -40 dBFS
  })
})

describe('Downsampler', () => {
  it.each([48000, 44100, 32000, 22050])('resamples %i Hz to 16 kHz at the right length', (rate) => {
    const out = inQuanta(new Downsampler(rate, 16000), sine(440, rate, 1))
    expect(Math.abs(out.length - 16000)).toBeLessThanOrEqual(2)
  })

  it('keeps a 1 kHz tone at its level and frequency', () => {
    const out = inQuanta(new Downsampler(44100, 16000), sine(1000, 44100, 1, 0.5))
    const steady = out.subarray(200)
    expect(rms(steady)).toBeCloseTo(0.5 * Math.SQRT1_2, 2)
    let crossings = 0
    for (let i = 1; i < steady.length; i++) if (steady[i - 1] < 0 && steady[i] >= 0) crossings++
    expect(Math.abs(crossings / (steady.length / 16000) - 1000)).toBeLessThan(5)
  })

  it('filters out tones above the new Nyquist frequency instead of aliasing them', () => {
    const out = inQuanta(new Downsampler(48000, 16000), sine(11000, 48000, 1, 0.5))
    expect(rms(out.subarray(200))).toBeLessThan(0.01)
  })

  it('gives the same samples whether fed whole or in pieces', () => {
    const signal = sine(700, 44100, 0.3)
    const whole = new Downsampler(44100).process(signal)
    const pieces = inQuanta(new Downsampler(44100), signal, 100)
    expect(pieces.length).toBe(whole.length)
    pieces.forEach((v, i) => expect(Math.abs(v - whole[i])).toBeLessThan(1e-5))
  })

  it('passes 16 kHz input through unchanged', () => {
    const x = sine(300, 16000, 0.01)
    expect([...new Downsampler(16000).process(x)]).toEqual([...x])
  })
})

describe('FrameAssembler', () => {
  it('emits fixed-size frames across pushes and keeps the remainder', () => {
    const fa = new FrameAssembler(320)
    expect(fa.push(new Float32Array(300))).toHaveLength(0)
    const frames = fa.push(Float32Array.from({ length: 700 }, (_, i) => i))
    expect(frames).toHaveLength(3)
    expect(frames.every((f) => f.length === 320)).toBe(true)
    expect(frames[0][300]).toBe(0)
    expect(frames[1][0]).toBe(20)
    expect(fa.push(new Float32Array(320 - 40 - 1))).toHaveLength(0)
    expect(fa.push(new Float32Array(1))).toHaveLength(1)
  })
})

describe('microphone frames', () => {
  it('are 60 ms: 960 samples, 1920 bytes of PCM16 at 16 kHz', () => {
    expect(MIC_FRAME_MS).toBe(60)
    expect(frameSamples(MIC_FRAME_MS)).toBe(960)
    expect(frameSamples(20, 48000)).toBe(960)
  })

  it('come out of the capture chain (48 kHz render quanta → 16 kHz → frames) at about 17 a second', () => {
    const ds = new Downsampler(48000)
    const fa = new FrameAssembler(frameSamples(MIC_FRAME_MS))
    const signal = sine(440, 48000, 1.0)
    const frames: Int16Array[] = []
    for (let i = 0; i < signal.length; i += 128) {
      for (const f of fa.push(ds.process(signal.subarray(i, i + 128)))) frames.push(floatTo16BitPcm(f))
    }
    expect(frames).toHaveLength(16) // 1 s / 60 ms, the last partial frame still buffered
    expect(frames.every((f) => f.byteLength === 1920)).toBe(true)
  })
})
