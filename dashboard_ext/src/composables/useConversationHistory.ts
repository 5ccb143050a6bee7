import type { Conversation } from '../lib/conversation'
import type { FrameHandlers } from '../lib/frames'
import { historyMessages, historyUrl } from '../lib/history'
import { record } from '../lib/testLog'

export interface ConversationHistoryOptions {
  /** Path prefix of the dashboard ('' or e.g. '/astrbot'). */
  prefix: string
  token: () => string | null
  conversation: Pick<Conversation, 'loadHistory'>
  /** @default globalThis.fetch */
  fetch?: typeof fetch
}

/**
 * On each `hello` (page open, reconnect) the transcript is filled with the conversation's earlier
 * turns, read from the host's own chat history API with the dashboard JWT. A failed read leaves
 * the transcript as it is (an API-key or room conversation the user cannot read, an older host).
 */
export function useConversationHistory(opts: ConversationHistoryOptions) {
  const doFetch = opts.fetch ?? ((...args: Parameters<typeof fetch>) => globalThis.fetch(...args))
  /** Bumped per hello: an answer for an older connection is dropped. */
  let generation = 0

  async function load(conversationId: string): Promise<void> {
    const mine = ++generation
    const token = opts.token()
    if (!token) return
    try {
      const res = await doFetch(historyUrl(opts.prefix, conversationId), {
        headers: { Authorization: `Bearer ${token}` },
        credentials: 'same-origin',
      })
      const messages = historyMessages(await res.json())
      if (mine !== generation) return
      opts.conversation.loadHistory(messages)
      record('history', { count: messages.length })
    } catch (err) {
      record('history', { error: String(err) })
    }
  }

  const frameHandlers: FrameHandlers = {
    hello: (f) => {
      if (f.data.conversation_id) void load(f.data.conversation_id)
    },
  }

  return { frameHandlers, load }
}
