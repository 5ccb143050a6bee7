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

/** Name of the stage that ends at each milestone (i18n key under metrics.seg). */
const STAGE: Partial<Record<Milestone, string>> = {
  eot_decided: 'wait', // server VAD: the silence waited before the turn's end was decided
  stt_done: 'stt',
  agent_start: 'agent',
  llm_first_token: 'llm',
  first_sentence: 'sentence',
  first_audio: 'tts',
  turn_end: 'rest',
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

const isMs = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0

/**
 * Turn a metrics timeline into consecutive stages. A missing milestone is skipped: the next
 * stage then starts at the previous milestone that is present (or at 0).
 */
export function summarizeTimeline(timeline: Timeline): LatencySummary {
  const start = isMs(timeline.speech_end) ? timeline.speech_end : isMs(timeline.text_in) ? timeline.text_in : 0
  const segments: LatencySegment[] = []
  let prev = start
  for (const key of MILESTONES.slice(1)) {
    const at = timeline[key]
    if (!isMs(at)) continue
    const from = Math.min(prev, at)
    segments.push({ stage: STAGE[key] as string, end: key, from, to: at, ms: Math.round(at - from) })
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
