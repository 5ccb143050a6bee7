import { describe, expect, it } from 'vitest'
import { summarizeTimeline } from '../src/lib/latency'

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
