import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { effectScope } from 'vue'
import { useAudioPlayer } from '../src/composables/useAudioPlayer'
import { encodeWavPcm16 } from '../src/audio/wav'
import { FakeAudioContext } from './fakes'

const clip = (ms: number) => encodeWavPcm16(new Int16Array((16000 * ms) / 1000), 16000)

let ctx: FakeAudioContext
beforeEach(() => {
  vi.useFakeTimers()
  ctx = new FakeAudioContext()
})
afterEach(() => vi.useRealTimers())

function make() {
  const scope = effectScope()
  const player = scope.run(() => useAudioPlayer({ context: () => ctx as never }))!
  return { scope, player }
}

describe('useAudioPlayer', () => {
  it('reports playing while scheduled audio lasts', async () => {
    const { player } = make()
    expect(player.playing.value).toBe(false)
    await player.enqueue('t1', clip(400))
    expect(player.playing.value).toBe(true)
    ctx.currentTime = 1
    vi.advanceTimersByTime(200)
    expect(player.playing.value).toBe(false)
    expect(player.level.value).toBe(0)
  })

  it('drop() returns the played ms and keeps the turn dead', async () => {
    const { player } = make()
    await player.enqueue('t1', clip(1000))
    ctx.currentTime = 0.53
    expect(player.drop('t1')).toBe(500)
    expect(player.isDead('t1')).toBe(true)
    expect(player.playing.value).toBe(false)
    await player.enqueue('t1', clip(1000))
    expect(ctx.sources).toHaveLength(1)
  })

  it('can drop a turn before any audio (interrupting while the bot thinks)', async () => {
    const { player } = make()
    expect(player.drop('t2')).toBe(0)
    await player.enqueue('t2', clip(100))
    expect(ctx.sources).toHaveLength(0)
    expect(player.playedMs('t2')).toBe(0)
  })

  it('stops playback when its scope is disposed', async () => {
    const { scope, player } = make()
    await player.enqueue('t1', clip(1000))
    scope.stop()
    expect(ctx.sources[0].stopped).toBe(true)
  })
})
