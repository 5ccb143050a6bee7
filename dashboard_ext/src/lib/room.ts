import { dispatchFrame, type FrameHandlers } from './frames'
import type { RoomMembers, RoomRole, RoomSnapshot, ServerFrame, ServerState, Viewer } from './protocol'

/** Room names the server accepts: 1–64 letters, digits, `-`, `_` or `.`. */
const ROOM_NAME = /^[A-Za-z0-9_.-]{1,64}$/

export function isRoomName(name: string | null | undefined): name is string {
  return !!name && ROOM_NAME.test(name)
}

/**
 * What the page knows about the live room it joined, from `hello.data.room`, `room` snapshots,
 * `state` frames and `configured{receive_audio}` (no I/O). Wrap an instance in `reactive()`.
 */
export class RoomView {
  /** The room the server put this connection in (null until it says so). */
  name: string | null = null
  role: RoomRole | null = null
  state: ServerState = 'listening'
  /** Viewer input waiting to be answered. */
  queue = 0
  members: Required<RoomMembers> = { streamer: 0, bridge: 0, listener: 0 }
  /** Whether this member receives `response` audio. */
  audio = true
  /** A `hello` arrived without `data.room`: the server does not know rooms. */
  unsupported = false

  /** `requested`: the room the connection asks for (so a hello without one means "unsupported"). */
  constructor(public requested: string | null = null) {}

  apply(frame: ServerFrame): void {
    dispatchFrame(frame, [this.frameHandlers()])
  }

  /** What each server frame does to the room view. Call on the reactive instance. */
  frameHandlers(): FrameHandlers {
    return {
      hello: (f) => {
        this.unsupported = !!this.requested && !f.data.room
        if (f.data.room) {
          this.name = f.data.room.name
          this.role = f.data.room.role
          this.audio = f.data.room.audio
        }
      },
      room: (f) => this.snapshot(f.data),
      state: (f) => {
        if (this.name) this.state = f.data.state
      },
      configured: (f) => {
        if (typeof f.data?.receive_audio === 'boolean') this.audio = f.data.receive_audio
      },
    }
  }

  /** A `room` snapshot: the whole room as the server sees it now. */
  snapshot(snap: RoomSnapshot): void {
    this.name = snap.name
    this.state = snap.state
    this.queue = snap.queue
    this.members = { streamer: 0, bridge: 0, listener: 0, ...snap.members }
    if (snap.you) {
      this.role = snap.you.role
      this.audio = snap.you.audio
    }
  }

  /** Everyone connected to the room, this page included. */
  get memberCount(): number {
    return this.members.streamer + this.members.bridge + this.members.listener
  }

  /** The connection dropped: what is known of the room is stale until the next snapshot. */
  reset(): void {
    this.name = null
    this.role = null
    this.state = 'listening'
    this.queue = 0
    this.members = { streamer: 0, bridge: 0, listener: 0 }
    this.unsupported = false
  }
}

/** How a viewer's input reads in one line: the chat text, or what they did (a gift, an entry…). */
export function viewerLine(v: Viewer, kindLabel: (kind: string) => string = (k) => k): string {
  const text = (v.text ?? '').trim()
  if (text) return text
  return v.kind && v.kind !== 'danmaku' ? kindLabel(v.kind) : ''
}
