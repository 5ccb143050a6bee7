import type { ServerFrame } from './protocol'

export type FrameType = ServerFrame['t']
export type FrameOf<T extends FrameType> = Extract<ServerFrame, { t: T }>

/** What one part of the page does with each kind of server frame; kinds it ignores are left out. */
export type FrameHandlers = { [T in FrameType]?: (frame: FrameOf<T>) => void }

/**
 * The one place that looks at a frame's `t`: each handler set, in order, gets the frames it
 * has a handler for. (Views such as the transcript and the room state are handler sets.)
 */
export function dispatchFrame(frame: ServerFrame, handlerSets: readonly FrameHandlers[]): void {
  for (const handlers of handlerSets) {
    const handle = handlers[frame.t] as ((f: ServerFrame) => void) | undefined
    handle?.(frame)
  }
}
