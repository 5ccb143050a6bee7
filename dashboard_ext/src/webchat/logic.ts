// The pure parts of the WebChat button: routes, labels, URLs, messages. No DOM here (unit-tested).

/** WebChat's views in the host's hash router: the dashboard chat and the full-page chat box. */
export type ChatView = 'chat' | 'chatbox'

export interface ChatRoute {
  view: ChatView
  conversationId: string | null
}

/** `#/chat`, `#/chat/<id>`, `#/chatbox/<id>` (with an optional query) → the view and conversation. */
export function parseChatRoute(hash: string): ChatRoute | null {
  const match = /^#?\/(chat|chatbox)(?:\/([^/?#]+))?\/?(?:\?.*)?$/.exec(hash)
  if (!match) return null
  let id: string | null = null
  try {
    id = match[2] ? decodeURIComponent(match[2]) : null
  } catch {
    return null
  }
  return { view: match[1] as ChatView, conversationId: id }
}

export function chatPath(view: ChatView, conversationId: string): string {
  return `/${view}/${encodeURIComponent(conversationId)}`
}

/**
 * The two navigations that make WebChat read a conversation again from the server.
 * The host caches a conversation's messages for as long as its chat view stays mounted;
 * passing through the other chat view remounts it, and the remount loads the history
 * (with the live turns) and the conversation list afresh.
 */
export function reloadDetour(view: ChatView, conversationId: string): [string, string] {
  const other: ChatView = view === 'chat' ? 'chatbox' : 'chat'
  return [chatPath(other, conversationId), chatPath(view, conversationId)]
}

export interface Labels {
  open: string
  close: string
  title: string
}

const ENGLISH: Labels = { open: 'Live Mode', close: 'Close', title: 'Live Mode' }
const CHINESE: Labels = { open: '实时对话', close: '关闭', title: '实时对话' }

/** The host's UI language (`astrbot-locale`, default zh-CN) picks the labels. */
export function labelsFor(locale: string | null | undefined): Labels {
  return (locale || 'zh-CN').toLowerCase().startsWith('zh') ? CHINESE : ENGLISH
}

/** The Live page inside the overlay, bound to the conversation, in its WebChat-embedded mode. */
export function liveFrameUrl(liveBase: string, conversationId: string | null): string {
  const url = new URL(liveBase)
  if (conversationId) url.searchParams.set('conversation_id', conversationId)
  url.searchParams.set('embed', 'webchat')
  return url.toString()
}

/**
 * The conversation of a link to the Live page (the `/live` command's reply), or null for any
 * other link. Only links to our own page on this origin count.
 */
export function liveLinkConversation(href: string, liveBase: string): string | null {
  let url: URL
  let base: URL
  try {
    base = new URL(liveBase)
    url = new URL(href, base)
  } catch {
    return null
  }
  if (url.origin !== base.origin || url.pathname !== base.pathname) return null
  if (url.searchParams.has('room')) return null // a room is not a WebChat conversation
  return url.searchParams.get('conversation_id') || null
}

/** The Live page's request to close the overlay (it sends this on Esc with no menu open). */
export function isCloseMessage(data: unknown): boolean {
  if (typeof data !== 'object' || data === null) return false
  const message = data as Record<string, unknown>
  return message.source === 'astrbot-live' && message.type === 'close'
}

/** Our button's classes: the host's icon button's, without its recording state. */
export function buttonClasses(hostClasses: Iterable<string>, own: string): string[] {
  const kept = [...hostClasses].filter((c) => !/record|--disabled|--loading|--active/i.test(c) && c !== own)
  return [...kept, own]
}

/** The host's theme class on an element (`v-theme--<name>`), which carries its colour variables. */
export function themeClass(classes: Iterable<string>): string | null {
  for (const c of classes) if (c.startsWith('v-theme--')) return c
  return null
}

/** Typed text that is exactly the `/live` command. */
export function isLiveCommand(text: string): boolean {
  return text.trim() === '/live'
}
