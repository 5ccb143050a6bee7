/**
 * WAV parsing for the sentence clips the server sends (`response` frames).
 * Handles PCM 8/16/24/32-bit and IEEE float 32/64 (plain or WAVE_FORMAT_EXTENSIBLE),
 * any channel count, and streaming-style headers whose sizes are 0 or 0xFFFFFFFF.
 */

export interface WavAudio {
  sampleRate: number
  channels: number
  bitsPerSample: number
  /** Samples per channel. */
  frames: number
  durationMs: number
  /** One Float32Array per channel, values in [-1, 1]. */
  channelData: Float32Array[]
}

export class WavError extends Error {}

const PCM = 1
const FLOAT = 3
const EXTENSIBLE = 0xfffe

/** Decode base64 (standard alphabet) into bytes. */
export function base64ToBytes(b64: string): Uint8Array {
  const bin = atob(b64)
  const out = new Uint8Array(bin.length)
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i)
  return out
}

function tag(view: DataView, at: number): string {
  return String.fromCharCode(view.getUint8(at), view.getUint8(at + 1), view.getUint8(at + 2), view.getUint8(at + 3))
}

/** Parse a WAV file into float channel data. Throws WavError when it is not a WAV it understands. */
export function parseWav(bytes: Uint8Array): WavAudio {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (bytes.byteLength < 12 || tag(view, 0) !== 'RIFF' || tag(view, 8) !== 'WAVE') {
    throw new WavError('not a RIFF/WAVE file')
  }
  let format = 0
  let channels = 0
  let sampleRate = 0
  let bits = 0
  let dataStart = -1
  let dataLength = 0
  let at = 12
  while (at + 8 <= bytes.byteLength) {
    const id = tag(view, at)
    const size = view.getUint32(at + 4, true)
    const body = at + 8
    if (id === 'fmt ') {
      format = view.getUint16(body, true)
      channels = view.getUint16(body + 2, true)
      sampleRate = view.getUint32(body + 4, true)
      bits = view.getUint16(body + 14, true)
      if (format === EXTENSIBLE && size >= 26) format = view.getUint16(body + 24, true)
    } else if (id === 'data') {
      dataStart = body
      const available = bytes.byteLength - body
      dataLength = size === 0 || size > available ? available : size
      break
    }
    at = body + size + (size % 2)
  }
  if (!channels || !sampleRate || dataStart < 0) throw new WavError('missing fmt or data chunk')
  if (format !== PCM && format !== FLOAT) throw new WavError(`unsupported WAV format ${format}`)
  const width = bits / 8
  if (![1, 2, 3, 4, 8].includes(width) || (format === FLOAT && width !== 4 && width !== 8)) {
    throw new WavError(`unsupported bit depth ${bits}`)
  }
  const frames = Math.floor(dataLength / (width * channels))
  const channelData = Array.from({ length: channels }, () => new Float32Array(frames))
  const read = sampleReader(view, format, width)
  let p = dataStart
  for (let f = 0; f < frames; f++) {
    for (let c = 0; c < channels; c++) {
      channelData[c][f] = read(p)
      p += width
    }
  }
  return { sampleRate, channels, bitsPerSample: bits, frames, durationMs: (frames / sampleRate) * 1000, channelData }
}

function sampleReader(view: DataView, format: number, width: number): (at: number) => number {
  if (format === FLOAT) return width === 4 ? (at) => view.getFloat32(at, true) : (at) => view.getFloat64(at, true)
  switch (width) {
    case 1:
      return (at) => (view.getUint8(at) - 128) / 128
    case 2:
      return (at) => view.getInt16(at, true) / 0x8000
    case 3:
      return (at) => {
        const v = view.getUint8(at) | (view.getUint8(at + 1) << 8) | (view.getInt8(at + 2) << 16)
        return v / 0x800000
      }
    default:
      return (at) => view.getInt32(at, true) / 0x80000000
  }
}

/** Build a mono PCM16 WAV (used by tests and for local diagnostics). */
export function encodeWavPcm16(samples: Int16Array, sampleRate: number): Uint8Array {
  const bytes = new Uint8Array(44 + samples.length * 2)
  const view = new DataView(bytes.buffer)
  const put = (at: number, s: string) => [...s].forEach((ch, i) => view.setUint8(at + i, ch.charCodeAt(0)))
  put(0, 'RIFF')
  view.setUint32(4, 36 + samples.length * 2, true)
  put(8, 'WAVE')
  put(12, 'fmt ')
  view.setUint32(16, 16, true)
  view.setUint16(20, PCM, true)
  view.setUint16(22, 1, true)
  view.setUint32(24, sampleRate, true)
  view.setUint32(28, sampleRate * 2, true)
  view.setUint16(32, 2, true)
  view.setUint16(34, 16, true)
  put(36, 'data')
  view.setUint32(40, samples.length * 2, true)
  for (let i = 0; i < samples.length; i++) view.setInt16(44 + i * 2, samples[i], true)
  return bytes
}
