import { describe, expect, it } from 'vitest'
import { cutAtWord, heardPrefix } from '../src/lib/heard'

const full = 'It is sunny today. Later, clouds may come in. Tomorrow looks the same.'
const sentences = [
  { seq: 0, text: 'It is sunny today.', ms: 1000 },
  { seq: 1, text: 'Later, clouds may come in.', ms: 2000 },
  { seq: 2, text: 'Tomorrow looks the same.', ms: 1500 },
]

describe('heardPrefix', () => {
  it('counts fully played sentences whole', () => {
    expect(heardPrefix(full, sentences, 1000)).toBe('It is sunny today.')
    expect(heardPrefix(full, sentences, 3000)).toBe('It is sunny today. Later, clouds may come in.')
    expect(heardPrefix(full, sentences, 99999)).toBe(full)
  })

  it('cuts the sentence that was playing in proportion, at a word boundary', () => {
    expect(heardPrefix(full, sentences, 2000)).toBe('It is sunny today. Later, clouds')
  })

  it('works for text without spaces (Chinese)', () => {
    const zh = '今天天气晴朗。下午可能有云。'
    const s = [
      { seq: 0, text: '今天天气晴朗。', ms: 700 },
      { seq: 1, text: '下午可能有云。', ms: 700 },
    ]
    expect(heardPrefix(zh, s, 1050)).toBe('今天天气晴朗。下午可能')
  })

  it('nothing played means nothing heard; unknown lengths mean unknown', () => {
    expect(heardPrefix(full, sentences, 0)).toBe('')
    expect(heardPrefix(full, [], 0)).toBe('')
    expect(heardPrefix(full, [{ seq: 0, text: 'It is sunny today.', ms: 0 }], 500)).toBeNull()
  })

  it('falls back to a proportion when a sentence is not found verbatim (markdown was stripped)', () => {
    const md = '**It is sunny** today. Later, clouds may come in.'
    const s = [
      { seq: 0, text: 'It is sunny today.', ms: 1000 },
      { seq: 1, text: 'Later, clouds may come in.', ms: 1000 },
    ]
    expect(md.startsWith(heardPrefix(md, s, 1000)!)).toBe(true)
    expect(heardPrefix(md, s, 1000)!.length).toBeGreaterThan(10)
  })
})

describe('cutAtWord', () => {
  it('backs up to the previous space but keeps whole words', () => {
    expect(cutAtWord('hello wonderful world', 9)).toBe('hello')
    expect(cutAtWord('hello wonderful world', 15)).toBe('hello wonderful')
    expect(cutAtWord('hello', 10)).toBe('hello')
    expect(cutAtWord('hello', 0)).toBe('')
    expect(cutAtWord('Rain tomorrow.', 2)).toBe('')
    expect(cutAtWord('下午可能有云', 2)).toBe('下午')
  })
})
