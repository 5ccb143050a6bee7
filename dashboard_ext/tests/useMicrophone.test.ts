import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { effectScope } from 'vue'
import { useMicrophone } from '../src/composables/useMicrophone'

/** The worklet node the composable creates: its options, and a port the test posts frames on. */
class FakeWorkletNode {
  static last: FakeWorkletNode | null = null
  port: { onmessage: ((ev: MessageEvent) => void) | null } = { onmessage: null }
  constructor(
    readonly ctx: unknown,
    readonly name: string,
    readonly options: AudioWorkletNodeOptions,
  ) {
    FakeWorkletNode.last = this
  }
  connect(): void {}
  disconnect(): void {}
  post(pcm: ArrayBuffer, rmsValue = 0.1): void {
    this.port.onmessage?.({ data: { pcm, rms: rmsValue } } as MessageEvent)
  }
}

const track = { enabled: true, stop() {}, addEventListener() {} }
const stream = { getAudioTracks: () => [track], getTracks: () => [track] }
const ctx = {
  state: 'running',
  audioWorklet: { addModule: () => Promise.resolve() },
  createMediaStreamSource: () => ({ connect() {}, disconnect() {} }),
  addEventListener() {},
  resume: () => Promise.resolve(),
}

beforeEach(() => {
  FakeWorkletNode.last = null
  vi.stubGlobal('window', { isSecureContext: true })
  vi.stubGlobal('AudioWorkletNode', FakeWorkletNode)
  vi.stubGlobal('navigator', {
    mediaDevices: {
      getUserMedia: () => Promise.resolve(stream),
      enumerateDevices: () => Promise.resolve([]),
      addEventListener() {},
      removeEventListener() {},
    },
  })
})
afterEach(() => vi.unstubAllGlobals())

function start(onFrame: (pcm: ArrayBuffer) => void) {
  const scope = effectScope()
  const mic = scope.run(() => useMicrophone({ context: () => ctx as never, onFrame }))!
  return { mic, scope }
}

describe('useMicrophone', () => {
  it('asks the capture worklet for 60 ms frames of 16 kHz audio', async () => {
    const { mic, scope } = start(() => {})
    expect(await mic.start()).toBe(true)
    expect(FakeWorkletNode.last?.name).toBe('live-capture')
    expect(FakeWorkletNode.last?.options.processorOptions).toEqual({ targetRate: 16000, frameSize: 960 })
    scope.stop()
  })

  it('passes frames on while unmuted only', async () => {
    const got: number[] = []
    const { mic, scope } = start((pcm) => got.push(pcm.byteLength))
    await mic.start()
    const node = FakeWorkletNode.last!
    node.post(new ArrayBuffer(1920))
    mic.setMuted(true)
    node.post(new ArrayBuffer(1920))
    expect(mic.level.value).toBe(0)
    mic.setMuted(false)
    node.post(new ArrayBuffer(1920), 0.05)
    expect(got).toEqual([1920, 1920])
    expect(mic.level.value).toBeGreaterThan(0)
    scope.stop()
  })
})
