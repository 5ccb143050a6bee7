/**
 * The host's WebChat history of a conversation (`GET /api/v1/chat/sessions/<id>`, the dashboard's
 * own API, with the dashboard JWT), read as transcript lines. Live turns are in it too: the
 * plugin saves them there, an interrupted answer as the part that was heard.
 */

export interface HistoryMessage {
  role: 'user' | 'bot'
  text: string
  interrupted: boolean
  ts: number
}

/** How many of the newest messages the page shows. */
export const HISTORY_PAGE_SIZE = 100

interface HistoryRow {
  content?: { type?: unknown; message?: unknown; interrupted?: unknown } | null
  created_at?: unknown
}

/**
 * A markdown link or image, `[label](url)` / `![alt](url)`; the url may hold one level of
 * parentheses (`…/Foo_(bar)`) and an optional `"title"`.
 */
const MARKDOWN_LINK = /!?\[([^\[\]\n]*)\]\(\s*([^()\s]*(?:\([^()\s]*\)[^()\s]*)*)(?:\s+"[^"\n]*")?\s*\)/g

/**
 * Markdown links read as their label (the url when the label is empty): host replies such as the
 * WebChat `/live` command's are markdown, and the transcript shows plain text, never HTML.
 */
export function markdownLinksAsText(text: string): string {
  return text.replace(MARKDOWN_LINK, (_all, label: string, url: string) => label.trim() || url)
}

/** The text of a message's parts: plain text as is, other parts (images, files…) as a short tag. */
function partsText(parts: unknown): string {
  if (typeof parts === 'string') return markdownLinksAsText(parts)
  if (!Array.isArray(parts)) return ''
  return parts
    .map((p) => {
      if (!p || typeof p !== 'object') return ''
      const part = p as { type?: unknown; text?: unknown }
      if (part.type === 'plain') return typeof part.text === 'string' ? markdownLinksAsText(part.text) : ''
      return typeof part.type === 'string' ? `[${part.type}]` : ''
    })
    .filter(Boolean)
    .join(' ')
    .trim()
}

/** The user and bot messages of a `get session` answer (`{status, data: {history}}`), oldest first. */
export function historyMessages(body: unknown): HistoryMessage[] {
  const data = (body as { status?: unknown; data?: { history?: unknown } } | null) ?? null
  if (!data || data.status !== 'ok' || !Array.isArray(data.data?.history)) return []
  const out: HistoryMessage[] = []
  for (const row of data.data.history as HistoryRow[]) {
    const content = row?.content
    const role = content?.type
    if (role !== 'user' && role !== 'bot') continue
    const text = partsText(content?.message)
    if (!text) continue
    const ts = typeof row.created_at === 'string' ? Date.parse(row.created_at) : NaN
    out.push({ role, text, interrupted: content?.interrupted === true, ts: Number.isFinite(ts) ? ts : Date.now() })
  }
  return out
}

/** The history URL for a conversation, at the page's path prefix. */
export function historyUrl(prefix: string, conversationId: string): string {
  return `${prefix}/api/v1/chat/sessions/${encodeURIComponent(conversationId)}?page_size=${HISTORY_PAGE_SIZE}`
}
