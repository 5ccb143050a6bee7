/**
 * Which part of an interrupted answer the user actually heard, from how many ms of its audio
 * played and how long each sentence's audio was. The server's `end` of an interrupted turn
 * carries no text, so the page works it out for the transcript.
 */

export interface SpokenSentence {
  seq: number
  text: string
  /** Audio length of this sentence (sum of its clips' `duration_ms`). */
  ms: number
}

/** Cut `text` to about `n` characters, backing up to a word boundary where words have spaces. */
export function cutAtWord(text: string, n: number): string {
  if (n >= text.length) return text
  if (n <= 0) return ''
  const head = text.slice(0, n)
  if (/\s/.test(text[n] ?? '')) return head
  const space = head.search(/\s\S*$/)
  if (space > 0) return head.slice(0, space)
  return /\s/.test(text) ? '' : head // a partial first word counts as unheard; CJK has no spaces
}

/**
 * The heard prefix of `full` (the answer as shown), or null when the audio lengths are unknown.
 * Fully played sentences count whole; the one playing when audio stopped counts in proportion.
 */
export function heardPrefix(full: string, sentences: SpokenSentence[], playedMs: number): string | null {
  if (playedMs <= 0) return ''
  const ordered = [...sentences].sort((a, b) => a.seq - b.seq)
  const total = ordered.reduce((sum, s) => sum + s.ms, 0)
  if (total <= 0) return null
  let remaining = playedMs
  let cursor = 0
  for (const s of ordered) {
    if (remaining <= 0) break
    const text = s.text.trim()
    const frac = s.ms > 0 ? Math.min(1, remaining / s.ms) : 1
    remaining -= s.ms
    if (!text) continue
    const part = cutAtWord(text, Math.round(text.length * frac))
    if (!part) break
    const at = full.indexOf(part, cursor)
    if (at < 0) return cutAtWord(full, Math.round(full.length * Math.min(1, playedMs / total)))
    cursor = at + part.length
  }
  return full.slice(0, cursor)
}
