import type { OrbState } from '../composables/useLiveSession'
import type { NotHeardReason } from './protocol'

/** What the orb says when an utterance got no answer (i18n keys): short, and why. */
export const NOTE_KEY: Record<NotHeardReason, string> = {
  empty_transcript: 'orb.notCaught',
  echo: 'orb.echoDropped',
  backchannel: 'orb.backchannel',
  noise: 'orb.noise',
}

export interface OrbLabelInput {
  state: OrbState
  /** No connection was tried yet (else a connecting orb is connecting). */
  socketIdle: boolean
  needsGesture: boolean
  muted: boolean
  micUsable: boolean
  /** The answer's playback is held while the server judges the user's speech. */
  paused: boolean
  /** A "not answered" notice being shown right now, if any. */
  note: NotHeardReason | null
}

/**
 * The i18n key of the one line under the orb. A notice takes the place of the state it explains
 * (a paused answer's "mm-hmm" notice replaces "Paused"), so the orb tells one story in one place,
 * and the captions stay.
 */
export function orbLabelKey(i: OrbLabelInput): string {
  if (i.state === 'connecting') return i.socketIdle ? 'conn.idle' : 'conn.connecting'
  if (i.needsGesture) return 'orb.tapToStart'
  if (i.note) return NOTE_KEY[i.note]
  if (i.state === 'listening' && i.muted) return 'orb.muted'
  if (i.state === 'listening' && !i.micUsable) return 'orb.textOnly'
  if (i.paused) return 'orb.paused'
  return `orb.${i.state}`
}
