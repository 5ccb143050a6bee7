// What the script reads from or asks of the host dashboard (AstrBot 4.26-4.29): its WebChat input
// bar, its router, its locale, its chat API. Every lookup may fail on another host version; callers
// then leave the page alone.

import { chatPath, parseChatRoute, reloadDetour, type ChatRoute } from './logic'

export const SELECTORS = {
  inputBar: '.input-area',
  actions: '.input-right-actions',
  mic: 'button.record-btn',
  iconButton: 'button.input-icon-btn',
  textarea: 'textarea.chat-textarea',
  send: 'button.send-btn',
  suggestions: '.command-suggestion-panel',
} as const

export interface InputBar {
  actions: HTMLElement
  /** The host's icon button we copy the look of, and sit in front of (the microphone). */
  template: HTMLButtonElement
}

export function findInputBar(root: ParentNode = document): InputBar | null {
  const actions = root.querySelector<HTMLElement>(`${SELECTORS.inputBar} ${SELECTORS.actions}`)
  if (!actions) return null
  const template =
    actions.querySelector<HTMLButtonElement>(SELECTORS.mic) ??
    actions.querySelector<HTMLButtonElement>(SELECTORS.iconButton)
  return template ? { actions, template } : null
}

export function currentRoute(): ChatRoute | null {
  return parseChatRoute(window.location.hash)
}

export function hostLocale(): string | null {
  try {
    return window.localStorage.getItem('astrbot-locale') || document.documentElement.lang || null
  } catch {
    return document.documentElement.lang || null
  }
}

interface HostRouter {
  push(path: string): Promise<unknown>
  replace(path: string): Promise<unknown>
  resolve(path: string): { matched: unknown[] }
}

/** The host's Vue Router, when its app exposes it (Vue sets `__vue_app__` on the mount element). */
function hostRouter(): HostRouter | null {
  const app = (document.getElementById('app') as { __vue_app__?: any } | null)?.__vue_app__
  const router = app?.config?.globalProperties?.$router
  return router && typeof router.replace === 'function' && typeof router.resolve === 'function' ? router : null
}

export async function navigate(path: string, how: 'push' | 'replace'): Promise<void> {
  const router = hostRouter()
  if (router) {
    await router[how](path)
    return
  }
  if (how === 'push') window.location.hash = `#${path}`
  else window.location.replace(`#${path}`)
}

/** Starts a new WebChat conversation the way WebChat does, or null if the host refuses. */
export async function newConversation(): Promise<string | null> {
  try {
    const headers: Record<string, string> = {}
    const token = window.localStorage.getItem('token')
    if (token) headers.Authorization = `Bearer ${token}`
    const locale = hostLocale()
    if (locale) headers['Accept-Language'] = locale
    const response = await fetch('/api/v1/chat/sessions/new', { headers, credentials: 'same-origin' })
    const body = await response.json()
    const id = body?.status === 'ok' ? body?.data?.session_id : null
    return typeof id === 'string' && id ? id : null
  } catch {
    return null
  }
}

/** Opens the conversation in WebChat (a new hash route: the host loads it). */
export async function showConversation(route: ChatRoute, conversationId: string): Promise<void> {
  await navigate(chatPath(route.view, conversationId), 'push')
}

function waitFor(check: () => boolean, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const deadline = performance.now() + timeoutMs
    const poll = () => {
      if (check()) resolve(true)
      else if (performance.now() > deadline) resolve(false)
      else window.setTimeout(poll, 30)
    }
    poll()
  })
}

/**
 * Makes WebChat show the conversation's messages as the server has them now (the live turns),
 * without a page load: the chat view is remounted by a detour through the other chat view.
 * Returns false (and changes nothing) when the host's router or routes are not what we know.
 */
export async function reloadConversation(route: ChatRoute, conversationId: string): Promise<boolean> {
  const router = hostRouter()
  if (!router) return false
  const [away, back] = reloadDetour(route.view, conversationId)
  if (!router.resolve(away).matched.length || !router.resolve(back).matched.length) return false
  const before = document.querySelector(SELECTORS.textarea)
  await router.replace(away)
  // The old chat view must really unmount, or the host keeps its cached messages.
  await waitFor(() => !before || !before.isConnected, 3000)
  await router.replace(back)
  return waitFor(() => !!document.querySelector(SELECTORS.textarea), 5000)
}

/**
 * Enter on `/live` while the host suggests commands only picks the suggestion (the text becomes
 * "/live "), so a second Enter would be needed; this sends it then with the host's own send button.
 * Without the suggestion showing, the host's Enter sends by itself and this does nothing.
 */
export function sendPickedCommand(textarea: HTMLTextAreaElement, isCommand: (text: string) => boolean): void {
  const bar = textarea.closest(SELECTORS.inputBar)
  if (!bar?.querySelector(SELECTORS.suggestions)) return
  window.setTimeout(() => {
    if (!textarea.isConnected || !isCommand(textarea.value)) return // sent, or another command picked
    const send = bar.querySelector<HTMLButtonElement>(SELECTORS.send)
    if (send && !send.disabled) send.click()
  }, 60)
}
