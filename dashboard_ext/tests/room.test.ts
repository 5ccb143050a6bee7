import { describe, expect, it } from 'vitest'
import { reactive } from 'vue'
import { Conversation } from '../src/lib/conversation'
import type { RoomSnapshot, ServerFrame } from '../src/lib/protocol'
import { isRoomName, RoomView, viewerLine } from '../src/lib/room'

const hello = (room?: { name: string; role: 'streamer' | 'listener'; audio: boolean }): ServerFrame => ({
  t: 'hello',
  data: { protocol: 'astrbot-live', version: 1, conversation_id: 'room-conv', room },
})
const snapshot = (over: Partial<RoomSnapshot> = {}): ServerFrame => ({
  t: 'room',
  data: {
    name: 'stream',
    state: 'listening',
    queue: 0,
    members: { streamer: 1 },
    you: { role: 'streamer', audio: true },
    ...over,
  },
})

describe('room names', () => {
  it('accepts 1-64 letters, digits, - _ . and nothing else', () => {
    for (const ok of ['stream', 'a', 'my-room_2.0', 'x'.repeat(64)]) expect(isRoomName(ok)).toBe(true)
    for (const bad of ['', 'x'.repeat(65), 'with space', 'slash/y', '房间', null, undefined]) expect(isRoomName(bad)).toBe(false)
  })
})

describe('RoomView', () => {
  it('takes the room from hello, then state, queue and members from snapshots', () => {
    const r = reactive(new RoomView('stream'))
    r.apply(hello({ name: 'stream', role: 'streamer', audio: true }))
    expect([r.name, r.role, r.audio, r.unsupported]).toEqual(['stream', 'streamer', true, false])
    r.apply(snapshot({ state: 'speaking', queue: 3, members: { streamer: 1, bridge: 1, listener: 2 } }))
    expect(r.state).toBe('speaking')
    expect(r.queue).toBe(3)
    expect(r.members).toEqual({ streamer: 1, bridge: 1, listener: 2 })
    expect(r.memberCount).toBe(4)
    // A role nobody holds may be missing from a snapshot: it counts as zero.
    r.apply(snapshot({ members: { streamer: 1 } }))
    expect(r.members).toEqual({ streamer: 1, bridge: 0, listener: 0 })
  })

  it('follows state frames between snapshots, and this member’s audio setting', () => {
    const r = new RoomView('stream')
    r.apply(snapshot())
    r.apply({ t: 'state', data: { state: 'thinking' } })
    expect(r.state).toBe('thinking')
    r.apply({ t: 'configured', data: { receive_audio: false } })
    expect(r.audio).toBe(false)
    r.apply({ t: 'configured', data: { output_audio: { format: 'wav' } } }) // an answer to configure: no change
    expect(r.audio).toBe(false)
    r.apply(snapshot({ you: { role: 'streamer', audio: true } }))
    expect(r.audio).toBe(true)
  })

  it('ignores state frames outside a room', () => {
    const r = new RoomView(null)
    r.apply(hello())
    r.apply({ t: 'state', data: { state: 'speaking' } })
    expect(r.name).toBeNull()
    expect(r.state).toBe('listening')
    expect(r.unsupported).toBe(false)
  })

  it('notices a server that answers a room request without a room', () => {
    const r = new RoomView('stream')
    r.apply(hello())
    expect(r.unsupported).toBe(true)
    expect(r.name).toBeNull()
  })

  it('forgets the room on reset but keeps the audio choice for the next connection', () => {
    const r = new RoomView('stream')
    r.apply(snapshot({ queue: 2, you: { role: 'streamer', audio: false } }))
    r.reset()
    expect([r.name, r.queue, r.memberCount, r.state]).toEqual([null, 0, 0, 'listening'])
    expect(r.audio).toBe(false)
  })
})

describe('viewer turns', () => {
  it('reads a viewer line as its text, or as what the viewer did', () => {
    const label = (k: string) => `<${k}>`
    expect(viewerLine({ name: 'Mika', kind: 'danmaku', text: ' hello! ' }, label)).toBe('hello!')
    expect(viewerLine({ name: 'Ren', kind: 'gift', value: 100 }, label)).toBe('<gift>')
    expect(viewerLine({ name: 'Ren', kind: 'danmaku' }, label)).toBe('')
  })

  it('puts the viewers of a turn in the transcript and the caption', () => {
    const c = reactive(new Conversation())
    const viewers = [
      { name: 'Mika', kind: 'danmaku', text: 'hello!', value: 0 },
      { name: 'Ren', kind: 'danmaku', text: 'sing something', value: 0 },
    ]
    c.apply({
      t: 'user_msg',
      turn: 'V',
      data: { text: '[Live chat] Viewers say:\n- Mika: hello!\n- Ren: sing something', viewers },
    })
    c.apply({ t: 'bot_delta_chunk', turn: 'V', data: { text: 'Hi Mika!' } })
    expect(c.entries[0]).toMatchObject({ role: 'user', turn: 'V', viewers })
    expect(c.caption.viewers).toEqual(viewers)
    expect(c.caption.bot).toBe('Hi Mika!')
    c.apply({ t: 'user_msg', turn: 'S', data: { text: 'my own question', viewers: [] } })
    expect(c.entries[2].viewers).toBeUndefined()
    expect(c.caption.viewers).toBeUndefined()
  })

  it('clears the transcript when the page moves to another conversation', () => {
    const c = reactive(new Conversation())
    c.apply({ t: 'user_msg', turn: 'a', data: { text: 'hi' } })
    c.apply({ t: 'bot_delta_chunk', turn: 'a', data: { text: 'Hello' } })
    c.clear()
    expect(c.entries).toEqual([])
    expect(c.caption).toEqual({ turn: null, user: '', bot: '' })
    expect(c.currentTurn).toBeNull()
    c.apply({ t: 'bot_delta_chunk', turn: 'a', data: { text: 'again' } })
    expect(c.entries.map((e) => e.text)).toEqual(['again'])
  })
})
