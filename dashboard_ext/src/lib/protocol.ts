/**
 * Wire types of the AstrBot Live protocol as this page uses it (JSON text frames keyed by `t`).
 * The authoritative description is docs/live-api.md in the plugin repository.
 */

export type ServerState = 'listening' | 'thinking' | 'speaking'

/** A member's part in a live room (docs/live-api.md, "Live rooms"). */
export type RoomRole = 'streamer' | 'bridge' | 'listener'

/** Members of a room by role; a role nobody has may be missing. */
export type RoomMembers = Partial<Record<RoomRole, number>>

/** The `room` snapshot every member receives on joining and after changes. */
export interface RoomSnapshot {
  name: string
  state: ServerState
  queue: number
  members: RoomMembers
  you: { role: RoomRole; audio: boolean }
}

/** One viewer whose input a turn answers (`user_msg.data.viewers`). */
export interface Viewer {
  name: string
  kind?: 'danmaku' | 'superchat' | 'gift' | 'guard' | 'entry' | string
  text?: string
  value?: number
}

export interface HelloData {
  protocol: string
  version: number
  session_id?: string
  conversation_id?: string
  username?: string
  server_vad?: boolean
  input_audio?: { format: string; sample_rate: number }
  output_audio?: { format: string; sample_rate: number | null }
  features?: string[]
  /** What answers: `cascade` (speech to text, the agent, text to speech) or `realtime` (a speech-to-speech model). */
  backend?: string
  /** Present when this connection joined a room. */
  room?: { name: string; role: RoomRole; audio: boolean }
}

/** Milestones of one turn, in ms from the turn's start (`speech_end` or `text_in` = 0); any may be missing. */
export interface Timeline {
  speech_end?: number
  text_in?: number
  /** Server VAD: when the end of the turn was decided (after `speech_end`, the user's last voiced audio). */
  eot_decided?: number
  stt_done?: number
  agent_start?: number
  llm_first_token?: number
  first_sentence?: number
  first_tts_start?: number
  first_audio?: number
  turn_end?: number
}

/**
 * Why an utterance got no answer (`transcript_empty`): no words, only the character's own voice, or
 * (with `pause_play=1`, after a pause) only an acknowledgement or a noise, so the answer resumed.
 */
export type NotHeardReason = 'empty_transcript' | 'echo' | 'backchannel' | 'noise'
const NOT_HEARD: readonly NotHeardReason[] = ['empty_transcript', 'echo', 'backchannel', 'noise']
export const notHeardReason = (value: unknown): NotHeardReason =>
  NOT_HEARD.includes(value as NotHeardReason) ? (value as NotHeardReason) : 'empty_transcript'

/** `end` of a turn. `heard`: for an interrupted turn, the part of the answer the history keeps. */
export interface EndData {
  interrupted?: boolean
  text?: string
  heard?: string
}

export type ServerFrame =
  | { t: 'hello'; data: HelloData }
  | { t: 'state'; data: { state: ServerState } }
  | { t: 'vad'; data: { state: 'speech_start' | 'speech_end' } }
  | { t: 'user_msg'; turn?: string; data: { text: string; ts?: number; viewers?: Viewer[] } }
  | { t: 'transcript_empty'; turn?: string; data?: { reason?: NotHeardReason } }
  | { t: 'bot_delta_chunk'; turn?: string; data: { text: string } }
  | { t: 'bot_text_chunk'; turn?: string; seq?: number; data: { text: string } }
  | {
      t: 'response'
      turn?: string
      seq?: number
      data: string
      format?: string
      duration_ms?: number
      sample_rate?: number
      final?: boolean
    }
  | { t: 'bot_msg'; turn?: string; data: { text: string; ts?: number } }
  | { t: 'stop_play'; turn?: string }
  | { t: 'pause_play'; turn?: string }
  | { t: 'resume_play'; turn?: string }
  | { t: 'end'; turn?: string; data?: EndData }
  | { t: 'metrics'; turn?: string; data: { timeline?: Timeline; [key: string]: unknown } }
  | { t: 'error'; code?: string; data?: string; turn?: string }
  | { t: 'pong'; data?: unknown }
  | { t: 'configured'; data?: { output_audio?: unknown; receive_audio?: boolean } }
  | { t: 'room'; data: RoomSnapshot }
  | { t: 'viewer_dropped'; data?: { reason?: string } }

export type ClientFrame =
  | { t: 'text_input'; text: string }
  | { t: 'interrupt'; turn?: string; played_ms?: number }
  | { t: 'mute' }
  | { t: 'unmute' }
  | { t: 'ping'; data?: unknown }
  | { t: 'playback_report'; turn: string; played_ms: number }
  | { t: 'set_audio'; enabled: boolean }

/** Error codes the page reacts to specially. */
export const UNAUTHORIZED = 'UNAUTHORIZED'

/** The WebSocket close code after a refused connection (an `error` frame with the reason comes first). */
export const CLOSE_POLICY_VIOLATION = 1008

/** Narrow an unknown parsed JSON value to a server frame (shape check on `t` only). */
export function asServerFrame(value: unknown): ServerFrame | null {
  if (!value || typeof value !== 'object') return null
  const t = (value as { t?: unknown }).t
  return typeof t === 'string' ? (value as ServerFrame) : null
}
