import { getCurrentScope, onScopeDispose, shallowRef, watch } from 'vue'
import { sharedAudioContext } from '../audio/context'
import { frameSamples, levelFromRms, MIC_FRAME_MS, TARGET_SAMPLE_RATE } from '../audio/pcm'
import captureWorkletUrl from '../audio/capture.worklet.ts?worker&url'

export type MicError = 'insecure' | 'unsupported' | 'denied' | 'no-device' | 'failed'

export interface MicrophoneOptions {
  /** Length of each PCM frame in ms. @default MIC_FRAME_MS (60) */
  frameMs?: number
  /** Receives each PCM16 LE mono 16 kHz frame while not muted. */
  onFrame?: (pcm: ArrayBuffer) => void
  /** Browser audio processing. @default all true */
  processing?: { echoCancellation?: boolean; noiseSuppression?: boolean; autoGainControl?: boolean }
  /** @default the page's shared AudioContext */
  context?: () => AudioContext
}

function classify(err: unknown): MicError {
  const name = (err as { name?: string })?.name
  if (name === 'NotAllowedError' || name === 'SecurityError') return 'denied'
  if (name === 'NotFoundError' || name === 'OverconstrainedError') return 'no-device'
  return 'failed'
}

/** Microphone capture through the `live-capture` AudioWorklet, with mute, level and device switching. */
export function useMicrophone(opts: MicrophoneOptions = {}) {
  const getContext = opts.context ?? sharedAudioContext
  const frameMs = opts.frameMs ?? MIC_FRAME_MS
  /** Level release per frame: the same fall speed whatever the frame length (0.85 per 20 ms). */
  const release = 0.85 ** (frameMs / 20)
  const isSupported =
    typeof window !== 'undefined' && typeof AudioWorkletNode !== 'undefined' && !!navigator.mediaDevices?.getUserMedia
  const active = shallowRef(false)
  const muted = shallowRef(false)
  /** Input level 0..1 (fast attack, slow release). */
  const level = shallowRef(0)
  const error = shallowRef<MicError | null>(null)
  const errorDetail = shallowRef('')
  const devices = shallowRef<MediaDeviceInfo[]>([])
  /** Selected input; '' is the system default. Changing it while active switches live. */
  const deviceId = shallowRef('')
  /** The AudioContext waits for a user gesture before it runs. */
  const needsGesture = shallowRef(false)

  let stream: MediaStream | null = null
  let source: MediaStreamAudioSourceNode | null = null
  let node: AudioWorkletNode | null = null
  let moduleReady: Promise<void> | null = null
  let watchingState = false

  function openStream(): Promise<MediaStream> {
    const p = opts.processing ?? {}
    return navigator.mediaDevices.getUserMedia({
      audio: {
        deviceId: deviceId.value ? { exact: deviceId.value } : undefined,
        channelCount: 1,
        echoCancellation: p.echoCancellation ?? true,
        noiseSuppression: p.noiseSuppression ?? true,
        autoGainControl: p.autoGainControl ?? true,
      },
    })
  }

  function attach(next: MediaStream): void {
    source?.disconnect()
    stream?.getTracks().forEach((tr) => tr.stop())
    stream = next
    const track = next.getAudioTracks()[0]
    if (track) {
      track.enabled = !muted.value
      track.addEventListener('ended', () => {
        if (stream === next && active.value) deviceId.value = '' // unplugged: fall back to the default
      })
    }
    source = getContext().createMediaStreamSource(next)
    if (node) source.connect(node)
  }

  function onPortMessage(ev: MessageEvent<{ pcm: ArrayBuffer; rms: number }>): void {
    const target = muted.value ? 0 : levelFromRms(ev.data.rms)
    level.value = target > level.value ? target : level.value * release + target * (1 - release)
    if (!muted.value) opts.onFrame?.(ev.data.pcm)
  }

  async function refreshDevices(): Promise<void> {
    const all = await navigator.mediaDevices?.enumerateDevices?.().catch(() => [])
    devices.value = (all ?? []).filter((d) => d.kind === 'audioinput' && d.deviceId && !['default', 'communications'].includes(d.deviceId))
  }

  /** Ask for the microphone and start streaming frames. Resolves false (with `error` set) on failure. */
  async function start(): Promise<boolean> {
    if (active.value) return true
    if (typeof window !== 'undefined' && !window.isSecureContext) error.value = 'insecure'
    else if (!isSupported) error.value = 'unsupported'
    if (error.value === 'insecure' || error.value === 'unsupported') return false
    try {
      const ctx = getContext()
      moduleReady ??= ctx.audioWorklet.addModule(captureWorkletUrl)
      await moduleReady
      const next = await openStream()
      node ??= new AudioWorkletNode(ctx, 'live-capture', {
        numberOfInputs: 1,
        numberOfOutputs: 0,
        channelCount: 1,
        channelCountMode: 'explicit',
        processorOptions: { targetRate: TARGET_SAMPLE_RATE, frameSize: frameSamples(frameMs) },
      })
      node.port.onmessage = onPortMessage
      attach(next)
      const syncGesture = () => (needsGesture.value = ctx.state !== 'running')
      if (!watchingState) ctx.addEventListener('statechange', syncGesture)
      watchingState = true
      // resume() stays pending until a user gesture where autoplay is blocked: do not await it.
      void ctx.resume().catch(() => {})
      syncGesture()
      active.value = true
      error.value = null
      void refreshDevices()
      return true
    } catch (err) {
      moduleReady = null
      error.value = classify(err)
      errorDetail.value = err instanceof Error ? err.message : String(err)
      return false
    }
  }

  function stop(): void {
    source?.disconnect()
    stream?.getTracks().forEach((tr) => tr.stop())
    node?.disconnect()
    if (node) node.port.onmessage = null
    source = null
    stream = null
    node = null
    active.value = false
    level.value = 0
  }

  function setMuted(value: boolean): void {
    muted.value = value
    stream?.getAudioTracks().forEach((tr) => (tr.enabled = !value))
    if (value) level.value = 0
  }

  watch(deviceId, async () => {
    if (!active.value) return
    try {
      attach(await openStream())
    } catch (err) {
      error.value = classify(err)
      errorDetail.value = err instanceof Error ? err.message : String(err)
    }
  })

  if (typeof navigator !== 'undefined' && navigator.mediaDevices) {
    navigator.mediaDevices.addEventListener?.('devicechange', refreshDevices)
  }
  if (getCurrentScope()) onScopeDispose(() => {
    stop()
    if (typeof navigator !== 'undefined') navigator.mediaDevices?.removeEventListener?.('devicechange', refreshDevices)
  })

  return { start, stop, setMuted, muted, active, level, isSupported, error, errorDetail, devices, deviceId, needsGesture }
}

export type Microphone = ReturnType<typeof useMicrophone>
