/**
 * AudioWorklet processor "live-capture": mixes the microphone down to mono, low-passes and
 * resamples it to 16 kHz, and posts fixed-size PCM16 frames with their RMS level:
 * `{ pcm: ArrayBuffer, rms: number }` (the buffer is transferred).
 */
import { Downsampler, FrameAssembler, MIC_FRAME_MS, TARGET_SAMPLE_RATE, floatTo16BitPcm, frameSamples, rms } from './pcm'

export interface CaptureOptions {
  targetRate: number
  frameSize: number
}

class LiveCaptureProcessor extends AudioWorkletProcessor {
  private readonly resampler: Downsampler
  private readonly frames: FrameAssembler

  constructor(options: AudioWorkletNodeOptions) {
    super(options)
    const opts = (options.processorOptions ?? {}) as Partial<CaptureOptions>
    const target = opts.targetRate ?? TARGET_SAMPLE_RATE
    this.resampler = new Downsampler(sampleRate, target)
    this.frames = new FrameAssembler(opts.frameSize ?? frameSamples(MIC_FRAME_MS, target))
  }

  process(inputs: Float32Array[][]): boolean {
    const channels = inputs[0]
    if (!channels || channels.length === 0) return true
    let mono = channels[0]
    if (channels.length > 1) {
      mono = new Float32Array(mono.length)
      for (const ch of channels) for (let i = 0; i < ch.length; i++) mono[i] += ch[i] / channels.length
    }
    for (const frame of this.frames.push(this.resampler.process(mono))) {
      const pcm = floatTo16BitPcm(frame)
      this.port.postMessage({ pcm: pcm.buffer, rms: rms(frame) }, [pcm.buffer])
    }
    return true
  }
}

registerProcessor('live-capture', LiveCaptureProcessor)
