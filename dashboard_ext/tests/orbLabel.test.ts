import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { effectScope, ref } from 'vue'
import { useFlash } from '../src/composables/useFlash'
import { setLocale, t } from '../src/lib/i18n'
import { backendNameKey } from '../src/lib/latency'
import { NOTE_KEY, orbLabelKey, type OrbLabelInput } from '../src/lib/orbLabel'

const base: OrbLabelInput = {
  state: 'speaking',
  socketIdle: false,
  needsGesture: false,
  muted: false,
  micUsable: true,
  paused: false,
  note: null,
}
const key = (over: Partial<OrbLabelInput>) => orbLabelKey({ ...base, ...over })

describe('orbLabelKey', () => {
  it('says the state, and "paused" while the answer is held', () => {
    expect(key({})).toBe('orb.speaking')
    expect(key({ state: 'hearing', paused: true })).toBe('orb.paused')
    expect(key({ state: 'listening', muted: true })).toBe('orb.muted')
    expect(key({ state: 'listening', micUsable: false })).toBe('orb.textOnly')
  })

  it('puts a notice in place of the state it explains, but not of a missing connection or gesture', () => {
    expect(key({ state: 'hearing', paused: true, note: 'backchannel' })).toBe('orb.backchannel')
    expect(key({ state: 'listening', note: 'empty_transcript' })).toBe('orb.notCaught')
    expect(key({ state: 'listening', muted: true, note: 'echo' })).toBe('orb.echoDropped')
    expect(key({ state: 'connecting', note: 'noise' })).toBe('conn.connecting')
    expect(key({ state: 'connecting', socketIdle: true })).toBe('conn.idle')
    expect(key({ needsGesture: true, note: 'noise' })).toBe('orb.tapToStart')
  })
})

describe('notice and backend wording', () => {
  afterEach(() => setLocale('en'))

  it('has every notice and backend name in English and Chinese', () => {
    const keys = [...Object.values(NOTE_KEY), 'orb.paused', backendNameKey('cascade')!, backendNameKey('realtime')!]
    for (const locale of ['en', 'zh'] as const) {
      setLocale(locale)
      for (const k of keys) expect(t(k), `${locale} ${k}`).not.toBe(k)
    }
    setLocale('zh')
    expect(t('orb.backchannel')).toMatch(/[\u4e00-\u9fff]/)
    expect(t(backendNameKey('realtime')!)).toBe('实时语音模型')
    setLocale('en')
    expect(t(backendNameKey('cascade')!)).toBe('Cascaded: STT → LLM → TTS')
    expect(t(backendNameKey('realtime')!)).toBe('Realtime model')
  })

  it('names only the backends it knows (a newer one is shown as the server sent it)', () => {
    expect(backendNameKey('cascade')).toBe('metrics.backendName.cascade')
    expect(backendNameKey('something-new')).toBeNull()
    expect(backendNameKey('toString')).toBeNull()
  })
})

describe('useFlash', () => {
  beforeEach(() => vi.useFakeTimers())
  afterEach(() => vi.useRealTimers())

  it('is on for a while after each bump; a new bump restarts the time (one notice at a time)', async () => {
    const count = ref(0)
    const scope = effectScope()
    const on = scope.run(() => useFlash(() => count.value, 2500))!
    expect(on.value).toBe(false)
    count.value++
    await vi.advanceTimersByTimeAsync(0)
    expect(on.value).toBe(true)
    await vi.advanceTimersByTimeAsync(2000)
    count.value++ // a second notice replaces the first and gets its own full time
    await vi.advanceTimersByTimeAsync(2000)
    expect(on.value).toBe(true)
    await vi.advanceTimersByTimeAsync(600)
    expect(on.value).toBe(false)
    count.value++
    await vi.advanceTimersByTimeAsync(0)
    scope.stop() // the page went away: no timer left behind
    expect(vi.getTimerCount()).toBe(0)
  })
})
