import { describe, expect, it } from 'vitest'
import { base64ToBytes, encodeWavPcm16, parseWav, WavError } from '../src/audio/wav'
import { toBase64 } from './fakes'

/** Build a WAV with any header fields and optional extra chunks before `data`. */
function wav(opts: {
  format?: number
  channels?: number
  rate?: number
  bits?: number
  data: Uint8Array
  extensible?: number
  dataSize?: number
  extraChunk?: boolean
}): Uint8Array {
  const fmtSize = opts.extensible ? 40 : 16
  const extra = opts.extraChunk ? 8 + 3 + 1 : 0
  const out = new Uint8Array(12 + 8 + fmtSize + extra + 8 + opts.data.length)
  const v = new DataView(out.buffer)
  const tag = (at: number, s: string) => [...s].forEach((c, i) => v.setUint8(at + i, c.charCodeAt(0)))
  const ch = opts.channels ?? 1
  const bits = opts.bits ?? 16
  tag(0, 'RIFF')
  v.setUint32(4, out.length - 8, true)
  tag(8, 'WAVE')
  tag(12, 'fmt ')
  v.setUint32(16, fmtSize, true)
  v.setUint16(20, opts.extensible ? 0xfffe : (opts.format ?? 1), true)
  v.setUint16(22, ch, true)
  v.setUint32(24, opts.rate ?? 24000, true)
  v.setUint32(28, (opts.rate ?? 24000) * ch * (bits / 8), true)
  v.setUint16(32, ch * (bits / 8), true)
  v.setUint16(34, bits, true)
  if (opts.extensible) v.setUint16(20 + 24, opts.extensible, true)
  let at = 20 + fmtSize
  if (opts.extraChunk) {
    tag(at, 'LIST')
    v.setUint32(at + 4, 3, true) // odd size: one pad byte follows
    at += 8 + 3 + 1
  }
  tag(at, 'data')
  v.setUint32(at + 4, opts.dataSize ?? opts.data.length, true)
  out.set(opts.data, at + 8)
  return out
}

const le16 = (...xs: number[]) => new Uint8Array(Int16Array.from(xs).buffer)

describe('parseWav', () => {
  it('round-trips PCM16 mono written by encodeWavPcm16', () => {
    const w = parseWav(encodeWavPcm16(Int16Array.from([0, 16384, -32768, 32767]), 22050))
    expect(w).toMatchObject({ sampleRate: 22050, channels: 1, bitsPerSample: 16, frames: 4 })
    expect([...w.channelData[0]]).toEqual([0, 0.5, -1, 32767 / 32768])
    expect(w.durationMs).toBeCloseTo((4 / 22050) * 1000, 6)
  })

  it('de-interleaves stereo', () => {
    const w = parseWav(wav({ channels: 2, data: le16(16384, -16384, 8192, -8192) }))
    expect([...w.channelData[0]]).toEqual([0.5, 0.25])
    expect([...w.channelData[1]]).toEqual([-0.5, -0.25])
  })

  it('reads 8-bit unsigned, 24-bit and 32-bit float samples', () => {
    expect([...parseWav(wav({ bits: 8, data: Uint8Array.from([128, 255, 0]) })).channelData[0]]).toEqual([
      0, 127 / 128, -1,
    ])
    const s24 = parseWav(wav({ bits: 24, data: Uint8Array.from([0, 0, 0x40, 0, 0, 0xc0]) })).channelData[0]
    expect([...s24]).toEqual([0.5, -0.5])
    const f32 = parseWav(wav({ format: 3, bits: 32, data: new Uint8Array(Float32Array.from([0.25, -1]).buffer) }))
    expect([...f32.channelData[0]]).toEqual([0.25, -1])
  })

  it('accepts WAVE_FORMAT_EXTENSIBLE with a PCM subformat', () => {
    expect(parseWav(wav({ extensible: 1, data: le16(1, 2) })).frames).toBe(2)
  })

  it('skips unknown chunks with their pad byte', () => {
    expect([...parseWav(wav({ extraChunk: true, data: le16(16384) })).channelData[0]]).toEqual([0.5])
  })

  it('uses the bytes present when a streaming header says 0 or 0xFFFFFFFF', () => {
    expect(parseWav(wav({ data: le16(1, 2, 3), dataSize: 0xffffffff })).frames).toBe(3)
    expect(parseWav(wav({ data: le16(1, 2, 3), dataSize: 0 })).frames).toBe(3)
  })

  it('rejects what it cannot read with WavError', () => {
    expect(() => parseWav(new TextEncoder().encode('ID3 mp3 bytes here'))).toThrow(WavError)
    expect(() => parseWav(wav({ format: 85, data: le16(1) }))).toThrow(WavError)
    expect(() => parseWav(wav({ bits: 12, data: le16(1) }))).toThrow(WavError)
  })
})

describe('base64ToBytes', () => {
  it('decodes what the server base64-encodes', () => {
    const bytes = encodeWavPcm16(Int16Array.from([1, -1, 300]), 16000)
    const b64 = toBase64(bytes)
    expect([...base64ToBytes(b64)]).toEqual([...bytes])
  })
})
