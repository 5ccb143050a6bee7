import type { Timeline } from './protocol'

/** Milestones in the order a voice turn passes them. */
export const MILESTONES = [
  'speech_end',
  'eot_decided',
  'stt_done',
  'agent_start',
  'llm_first_token',
  'first_sentence',
  'first_audio',
  'turn_end',
] as const
export type Milestone = (typeof MILESTONES)[number]

const isMs = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0

/** A stage of a turn: the milestone that ends it and its name (i18n key under metrics.seg). */
type Stages = readonly (readonly [Milestone, string])[]

/** The cascade: speech to text, the agent, the LLM, the first sentence, text to speech. */
const CASCADE_STAGES: Stages = [
  ['eot_decided', 'wait'], // server VAD: the silence waited before the turn's end was decided
  ['stt_done', 'stt'],
  ['agent_start', 'agent'],
  ['llm_first_token', 'llm'],
  ['first_sentence', 'sentence'],
  ['first_audio', 'tts'],
  ['turn_end', 'rest'],
]

/**
 * A realtime model: the utterance (or text) goes to the model (`agent_start`: `response.create` sent,
 * or the model's own commit), which speaks. Its transcripts (`stt_done`, `llm_first_token`) arrive
 * beside its audio, on no stage's path, so they are not stages here.
 */
const REALTIME_STAGES: Stages = [
  ['eot_decided', 'wait'],
  ['agent_start', 'send'],
  ['first_audio', 'model'],
  ['turn_end', 'rest'],
]

/** The stages of a turn, by what answered it (its metrics' `backend`; a fallback turn says `cascade`). */
export function stagesFor(data: Record<string, unknown>): Stages {
  return data.backend === 'realtime' ? REALTIME_STAGES : CASCADE_STAGES
}

/**
 * A realtime turn that swapped provider sessions on its path: how long it waited for one (`spare`:
 * the pre-warmed one, `connect`: a handshake). With the model's own turn detection the listener swaps
 * between turns, on no turn's path, so nothing is shown then.
 */
function sessionWait(data: Record<string, unknown>): { stage: string; ms: number } | null {
  const swap = data.realtime_swap
  const ms = data.realtime_take_ms
  if (data.backend !== 'realtime' || data.eot_mode === 'backend' || !isMs(ms)) return null
  if (swap === 'warm') return { stage: 'spare', ms }
  if (swap === 'cold') return { stage: 'connect', ms }
  return null
}

export interface LatencySegment {
  stage: string
  end: Milestone
  from: number
  to: number
  ms: number
}

export interface LatencySummary {
  segments: LatencySegment[]
  /** Right edge of the chart, in ms. */
  total: number
  /** Speech end (or turn start for typed input) to first audio, if both are known. */
  firstAudioMs: number | null
}

/**
 * Turn a metrics timeline into consecutive stages, those of the backend that answered (`data`: the
 * turn's other metrics). A missing milestone is skipped: the next stage then starts at the previous
 * milestone that is present (or at 0).
 */
export function summarizeTimeline(timeline: Timeline, data: Record<string, unknown> = {}): LatencySummary {
  const start = isMs(timeline.speech_end) ? timeline.speech_end : isMs(timeline.text_in) ? timeline.text_in : 0
  const segments: LatencySegment[] = []
  const session = sessionWait(data)
  let prev = start
  for (const [key, stage] of stagesFor(data)) {
    const at = timeline[key]
    if (!isMs(at)) continue
    let from = Math.min(prev, at)
    if (key === 'agent_start' && session) {
      // the session was taken before the model was asked: the first part of this stage
      const taken = Math.min(from + session.ms, at)
      segments.push({ stage: session.stage, end: key, from, to: taken, ms: Math.round(session.ms) })
      from = taken
    }
    segments.push({ stage, end: key, from, to: at, ms: Math.round(at - from) })
    prev = Math.max(prev, at)
  }
  const total = Math.max(prev, ...segments.map((s) => s.to), 1)
  const firstAudioMs = isMs(timeline.first_audio) ? Math.round(timeline.first_audio - start) : null
  return { segments, total, firstAudioMs }
}

/** The backends this page can name (`hello.data.backend`); a newer server's other one shows as sent. */
const BACKENDS = ['cascade', 'realtime'] as const

/** i18n key of a backend's readable name, or null for a backend this page does not know. */
export function backendNameKey(backend: string): string | null {
  return (BACKENDS as readonly string[]).includes(backend) ? `metrics.backendName.${backend}` : null
}
