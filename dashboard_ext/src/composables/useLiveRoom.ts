import { reactive, shallowRef } from 'vue'
import type { ClientFrame } from '../lib/protocol'
import { isRoomName, RoomView } from '../lib/room'
import { overlayUrl } from '../lib/urls'

export interface LiveRoomOptions {
  /** The room asked for in the page URL (`?room=`), if any. */
  initial: string | null
  location: Pick<Location, 'protocol' | 'host' | 'pathname'>
  token: () => string | null
  send: (frame: ClientFrame) => boolean
  /** Silence this page now (its room audio was turned off). */
  stopAudio: () => void
  /** The page moves to another room (or back to the personal conversation): reset and reconnect. */
  onSwitch: (room: string | null) => void
}

/** The live room this page streams in as the streamer (`?room=`), or none. */
export function useLiveRoom(opts: LiveRoomOptions) {
  const room = shallowRef<string | null>(isRoomName(opts.initial) ? opts.initial : null)
  const view = reactive(new RoomView(room.value))

  /** The socket parameters of a room member (a room has its own conversation). */
  const socketParams = (): Record<string, string> | null =>
    room.value ? { room: room.value, role: 'streamer', audio: view.audio ? '1' : '0' } : null

  /** Stream in room `name` (null: leave the room for the personal conversation). */
  function setRoom(name: string | null): boolean {
    const next = name?.trim() || null
    if (next !== null && !isRoomName(next)) return false
    if (next === room.value) return true
    room.value = next
    view.reset()
    view.requested = next
    opts.onSwitch(next)
    return true
  }

  /** Receive the room's audio on this page, or not (`set_audio`); other members are unaffected. */
  function setAudio(enabled: boolean): void {
    view.audio = enabled
    if (!enabled) opts.stopAudio()
    opts.send({ t: 'set_audio', enabled })
  }

  /** The OBS overlay for the current room, logged in with this page's JWT (it expires). */
  function overlayHref(withAudio = false): string | null {
    const token = opts.token()
    return room.value && token ? overlayUrl(opts.location, { room: room.value, token, audio: withAudio }) : null
  }

  return { room, view, socketParams, setRoom, setAudio, overlayHref }
}

export type LiveRoom = ReturnType<typeof useLiveRoom>
