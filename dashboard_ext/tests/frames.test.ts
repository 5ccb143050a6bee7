import { describe, expect, it } from 'vitest'
import { dispatchFrame, type FrameHandlers } from '../src/lib/frames'

describe('dispatchFrame', () => {
  it('hands each frame to every handler set that handles its kind, in order', () => {
    const seen: string[] = []
    const a: FrameHandlers = { hello: () => seen.push('a:hello'), end: (f) => seen.push(`a:end:${f.turn}`) }
    const b: FrameHandlers = { end: (f) => seen.push(`b:end:${f.data?.heard}`) }
    dispatchFrame({ t: 'hello', data: { protocol: 'astrbot-live', version: 1 } }, [a, b])
    dispatchFrame({ t: 'end', turn: 'T', data: { interrupted: true, heard: 'Hi' } }, [a, b])
    dispatchFrame({ t: 'pong', data: 1 }, [a, b]) // nobody handles it
    expect(seen).toEqual(['a:hello', 'a:end:T', 'b:end:Hi'])
  })
})
