/** Test doubles for browser APIs the composables use. */

export class FakeWebSocket {
  static instances: FakeWebSocket[] = []
  static reset(): void {
    FakeWebSocket.instances = []
  }
  static get last(): FakeWebSocket {
    return FakeWebSocket.instances[FakeWebSocket.instances.length - 1]
  }

  readyState = 0
  binaryType = 'blob'
  sent: unknown[] = []
  closedWith: { code?: number; reason?: string } | null = null
  onopen: ((ev: Event) => void) | null = null
  onmessage: ((ev: MessageEvent) => void) | null = null
  onclose: ((ev: CloseEvent) => void) | null = null
  onerror: ((ev: Event) => void) | null = null

  constructor(readonly url: string) {
    FakeWebSocket.instances.push(this)
  }

  send(data: unknown): void {
    if (this.readyState !== 1) throw new Error('not open')
    this.sent.push(data)
  }

  close(code?: number, reason?: string): void {
    this.closedWith = { code, reason }
    this.readyState = 3
  }

  // Server side of the fake:
  open(): void {
    this.readyState = 1
    this.onopen?.(new Event('open'))
  }
  receive(data: unknown): void {
    const payload = typeof data === 'string' || data instanceof ArrayBuffer ? data : JSON.stringify(data)
    this.onmessage?.({ data: payload } as MessageEvent)
  }
  drop(code = 1006, reason = ''): void {
    this.readyState = 3
    this.onclose?.({ code, reason } as CloseEvent)
  }
}

interface FakeSource {
  buffer: FakeBuffer | null
  startedAt: number | null
  /** Seconds into the buffer it starts from (a resumed clip). */
  offset: number
  stopped: boolean
  onended: (() => void) | null
  connect(): void
  disconnect(): void
  start(when: number, offset?: number): void
  stop(): void
}

export interface FakeBuffer {
  numberOfChannels: number
  length: number
  sampleRate: number
  duration: number
  channels: Float32Array[]
  copyToChannel(data: Float32Array, c: number): void
}

/** Just enough of an AudioContext for the scheduler and the player: time is set by the test. */
export class FakeAudioContext {
  currentTime = 0
  state = 'running'
  destination = {}
  sources: FakeSource[] = []
  /** Resolves decodeAudioData calls in the order the test chooses. */
  pendingDecodes: Array<{ bytes: ArrayBuffer; resolve: (b: FakeBuffer) => void }> = []

  createBuffer(channels: number, length: number, sampleRate: number): FakeBuffer {
    const data = Array.from({ length: channels }, () => new Float32Array(length))
    return {
      numberOfChannels: channels,
      length,
      sampleRate,
      duration: length / sampleRate,
      channels: data,
      copyToChannel: (src, c) => data[c].set(src),
    }
  }

  createBufferSource(): FakeSource {
    const src: FakeSource = {
      buffer: null,
      startedAt: null,
      offset: 0,
      stopped: false,
      onended: null,
      connect() {},
      disconnect() {},
      start(when, offset = 0) {
        src.startedAt = when
        src.offset = offset
      },
      stop() {
        src.stopped = true
        src.onended?.()
      },
    }
    this.sources.push(src)
    return src
  }

  createGain() {
    return { connect() {}, disconnect() {} }
  }

  createAnalyser() {
    return { fftSize: 2048, connect() {}, getFloatTimeDomainData(a: Float32Array) { a.fill(0) } }
  }

  decodeAudioData(bytes: ArrayBuffer): Promise<FakeBuffer> {
    return new Promise((resolve) => this.pendingDecodes.push({ bytes, resolve }))
  }
}

/** Resolve queued promise callbacks (several hops of the scheduler's chain). */
export async function flush(times = 10): Promise<void> {
  for (let i = 0; i < times; i++) await Promise.resolve()
}

/** Base64 of bytes, as the server sends audio (no Node Buffer needed). */
export function toBase64(bytes: Uint8Array): string {
  let bin = ''
  for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i])
  return btoa(bin)
}
