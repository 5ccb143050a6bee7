/**
 * An always-on, bounded record of what the page received, sent and played, exposed as
 * `window.__liveTest` so browser end-to-end tests can assert on it. Audio frames sent
 * upstream are only counted (50 per second would flood the log).
 */

export type LogEntry = { kind: string; at: number; [key: string]: unknown }

export interface LiveTestApi {
  log: LogEntry[]
  audioFramesSent: number
  audioBytesSent: number
  /** Current session state, filled in by the session. */
  snapshot: () => Record<string, unknown>
}

const MAX_ENTRIES = 5000

function create(): LiveTestApi {
  return { log: [], audioFramesSent: 0, audioBytesSent: 0, snapshot: () => ({}) }
}

export const liveTest: LiveTestApi = (() => {
  const api = create()
  if (typeof window !== 'undefined') (window as unknown as { __liveTest: LiveTestApi }).__liveTest = api
  return api
})()

const now = (): number => (typeof performance !== 'undefined' ? performance.now() : Date.now())

export function record(kind: string, fields: Record<string, unknown> = {}): void {
  liveTest.log.push({ kind, at: Math.round(now()), ...fields })
  if (liveTest.log.length > MAX_ENTRIES) liveTest.log.splice(0, liveTest.log.length - MAX_ENTRIES)
}

export function countAudioSent(bytes: number): void {
  liveTest.audioFramesSent += 1
  liveTest.audioBytesSent += bytes
}
