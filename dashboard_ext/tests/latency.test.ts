import { describe, expect, it } from 'vitest'
import { stagesFor, summarizeTimeline } from '../src/lib/latency'
import { en, zh } from '../src/lib/messages'

describe('summarizeTimeline', () => {
  it('turns milestones into consecutive stages', () => {
    const s = summarizeTimeline({
      speech_end: 0,
      stt_done: 150,
      llm_first_token: 500,
      first_sentence: 540,
      first_audio: 700,
      turn_end: 2000,
    })
    expect(s.segments.map((x) => [x.stage, x.from, x.to, x.ms])).toEqual([
      ['stt', 0, 150, 150],
      ['llm', 150, 500, 350],
      ['sentence', 500, 540, 40],
      ['tts', 540, 700, 160],
      ['rest', 700, 2000, 1300],
    ])
    expect(s.total).toBe(2000)
    expect(s.firstAudioMs).toBe(700)
  })

  it('starts at the end of speech and shows the end-of-turn wait as its own stage', () => {
    const s = summarizeTimeline({ speech_end: 0, eot_decided: 230, stt_done: 400, first_audio: 700 })
    expect(s.segments.map((x) => [x.stage, x.from, x.to])).toEqual([
      ['wait', 0, 230],
      ['stt', 230, 400],
      ['tts', 400, 700],
    ])
    expect(s.firstAudioMs).toBe(700) // from the last word, not from the decision
  })

  it('includes the agent start and measures typed turns from text_in', () => {
    const s = summarizeTimeline({ text_in: 0, agent_start: 5, llm_first_token: 300, first_tts_start: 350, first_audio: 420 })
    expect(s.segments.map((x) => [x.stage, x.ms])).toEqual([
      ['agent', 5],
      ['llm', 295],
      ['tts', 120],
    ])
    expect(s.firstAudioMs).toBe(420)
  })

  it('skips missing milestones (a typed turn has no speech_end or STT)', () => {
    const s = summarizeTimeline({ llm_first_token: 300, first_audio: 800 })
    expect(s.segments.map((x) => [x.stage, x.from, x.to])).toEqual([
      ['llm', 0, 300],
      ['tts', 300, 800],
    ])
    expect(s.firstAudioMs).toBe(800)
  })

  it('measures first audio from the end of speech and survives junk values', () => {
    const s = summarizeTimeline({ speech_end: 100, stt_done: Number.NaN, first_audio: 900 } as never)
    expect(s.firstAudioMs).toBe(800)
    expect(s.segments).toHaveLength(1)
    expect(summarizeTimeline({}).segments).toEqual([])
    expect(summarizeTimeline({}).firstAudioMs).toBeNull()
  })
})

// A realtime turn as the answerer records it: our VAD's end of turn, the audio sent and
// `response.create` (agent_start), the model's transcripts beside its audio, the rest of the answer.
const REALTIME_TURN = {
  speech_end: 0,
  eot_decided: 384,
  stt_done: 393,
  agent_start: 393,
  llm_first_token: 697,
  first_audio: 697,
  turn_end: 820,
}
const stages = (timeline: object, data: Record<string, unknown>) =>
  summarizeTimeline(timeline, data).segments.map((x) => [x.stage, x.from, x.to, x.ms])

describe('the stages of a realtime turn', () => {
  it('are the end of turn, getting the turn to the model, the model until its audio, and the rest', () => {
    expect(stages(REALTIME_TURN, { backend: 'realtime', realtime_swap: 'kept' })).toEqual([
      ['wait', 0, 384, 384],
      ['send', 384, 393, 9],
      ['model', 393, 697, 304],
      ['rest', 697, 820, 123],
    ])
    expect(summarizeTimeline(REALTIME_TURN, { backend: 'realtime' }).firstAudioMs).toBe(697)
  })

  it('are chosen by the turn\'s backend: a cascade turn, or the fallback\'s, keeps the cascade\'s', () => {
    const cascade = [
      ['wait', 0, 384, 384],
      ['stt', 384, 393, 9],
      ['agent', 393, 393, 0],
      ['llm', 393, 697, 304],
      ['tts', 697, 697, 0],
      ['rest', 697, 820, 123],
    ]
    expect(stages(REALTIME_TURN, { backend: 'cascade', realtime_error: 'REALTIME_TIMEOUT' })).toEqual(cascade)
    expect(stages(REALTIME_TURN, {})).toEqual(cascade) // an older server says no backend
    expect(stagesFor({ backend: 'realtime' }).map(([, stage]) => stage)).toEqual(['wait', 'send', 'model', 'rest'])
  })

  it('show the wait for a provider session on a swap, at the start of getting the turn to the model', () => {
    const timeline = { speech_end: 0, eot_decided: 300, agent_start: 560, first_audio: 900, turn_end: 1000 }
    expect(stages(timeline, { backend: 'realtime', realtime_swap: 'cold', realtime_take_ms: 212.4 })).toEqual([
      ['wait', 0, 300, 300],
      ['connect', 300, 512.4, 212],
      ['send', 512.4, 560, 48],
      ['model', 560, 900, 340],
      ['rest', 900, 1000, 100],
    ])
    expect(stages(timeline, { backend: 'realtime', realtime_swap: 'warm', realtime_take_ms: 0.1 }).slice(1, 3)).toEqual([
      ['spare', 300, 300.1, 0],
      ['send', 300.1, 560, 260],
    ])
  })

  it('leave out a swap that was on no turn\'s path (the model\'s own turn detection swaps between turns)', () => {
    const timeline = { speech_end: 0, agent_start: 12, first_audio: 400, turn_end: 500 }
    const data = { backend: 'realtime', eot_mode: 'backend', realtime_swap: 'warm', realtime_take_ms: 180 }
    expect(stages(timeline, data).map(([stage]) => stage)).toEqual(['send', 'model', 'rest'])
  })

  it('draw a typed turn from its text, and a turn with no audio without the model\'s stage', () => {
    expect(stages({ text_in: 0, agent_start: 4, first_audio: 310, turn_end: 600 }, { backend: 'realtime' })).toEqual([
      ['send', 0, 4, 4],
      ['model', 4, 310, 306],
      ['rest', 310, 600, 290],
    ])
    expect(stages({ text_in: 0, agent_start: 4, llm_first_token: 200, turn_end: 600 }, { backend: 'realtime' })).toEqual([
      ['send', 0, 4, 4],
      ['rest', 4, 600, 596],
    ])
  })

  it('have names in every language', () => {
    for (const [lang, m] of Object.entries({ en, zh })) {
      const seg: Record<string, string> = m.metrics.seg
      for (const stage of ['spare', 'connect', 'send', 'model', 'wait', 'rest']) expect(seg[stage], `${lang} ${stage}`).toBeTruthy()
    }
  })
})
