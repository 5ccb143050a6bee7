import { base64ToBytes } from '../audio/wav'
import type { ClientFrame, ServerFrame } from '../lib/protocol'
import { record } from '../lib/testLog'
import type { AudioPlayer } from './useAudioPlayer'

type ResponseFrame = Extract<ServerFrame, { t: 'response' }>

export interface TurnPlaybackOptions {
  /** Sends a frame to the server (`playback_report`, `interrupt`). */
  send: (frame: ClientFrame) => boolean
  /** The turn in progress, for frames that carry no turn id. */
  currentTurn: () => string | null
  /** Called when a turn's playback was cut, with the ms that were played. */
  onStopped?: (turn: string, playedMs: number) => void
  /**
   * Whether what this client played is what the user heard, so the server should hear the played
   * ms. False for a client whose audio is off (a room member with `set_audio` off): then it sends
   * no `playback_report` and an `interrupt` without `played_ms`, and the server keeps its estimate.
   * @default always
   */
  reportsPlayback?: () => boolean
}

/**
 * The protocol side of playback: clips go to the player under their turn id; a server
 * `stop_play` or the user's interrupt kills the turn, and the server hears exactly once
 * how many ms of it were played (`interrupt{played_ms}` or `playback_report`).
 */
export function useTurnPlayback(player: AudioPlayer, opts: TurnPlaybackOptions) {
  const { send, currentTurn } = opts
  const onStopped = opts.onStopped ?? (() => {})
  const reportsPlayback = opts.reportsPlayback ?? (() => true)
  /** Turns whose played ms the server already has. */
  const reported = new Set<string>()

  function onResponse(frame: ResponseFrame): void {
    const turn = frame.turn ?? currentTurn() ?? ''
    if (player.isDead(turn)) return record('dropped', { turn, seq: frame.seq, reason: 'dead turn' })
    let bytes: Uint8Array
    try {
      bytes = base64ToBytes(frame.data)
    } catch {
      return record('decode_error', { turn, seq: frame.seq, error: 'bad base64' })
    }
    void player.enqueue(turn, bytes, { seq: frame.seq, format: frame.format, sampleRate: frame.sample_rate })
  }

  function onStopPlay(turn: string | undefined): void {
    const target = turn ?? currentTurn()
    if (!target) return player.stopAll()
    const played = player.drop(target)
    onStopped(target, played)
    if (!reported.has(target) && reportsPlayback()) send({ t: 'playback_report', turn: target, played_ms: played })
    reported.add(target)
  }

  /** The user speaks over `turn`: hold its playback until `resume_play` or `stop_play` (`pause_play=1`). */
  function onPausePlay(turn: string | undefined): void {
    const target = turn ?? currentTurn()
    if (target && !player.isDead(target)) player.pause(target)
  }

  /** It was not an interruption: play on from where it paused. */
  function onResumePlay(): void {
    player.resume()
  }

  /** The user cut the bot off: stop locally now and tell the server how much was heard. */
  function interrupt(): void {
    const turn = currentTurn() ?? undefined
    const played = turn ? player.drop(turn) : 0
    if (turn) {
      reported.add(turn)
      onStopped(turn, played)
    }
    send(reportsPlayback() ? { t: 'interrupt', turn, played_ms: played } : { t: 'interrupt', turn })
  }

  /** The connection is gone: so are its turns. */
  function reset(): void {
    player.stopAll()
    reported.clear()
  }

  return { onResponse, onStopPlay, onPausePlay, onResumePlay, interrupt, reset }
}
