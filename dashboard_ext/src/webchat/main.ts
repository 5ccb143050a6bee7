// The Live Mode button in the host's WebChat. The plugin serves the host's own index page with
// this one module script added; it waits for WebChat's input bar, puts a button in front of the
// host's microphone, and opens the Live page over WebChat in an overlay. When the page is not what
// we know (no input bar, no router), it does nothing: the dashboard stays as the host made it.

import {
  buttonClasses,
  isCloseMessage,
  isLiveCommand,
  labelsFor,
  liveFrameUrl,
  liveLinkConversation,
  themeClass,
  type ChatRoute,
  type Labels,
} from './logic'
import {
  currentRoute,
  findInputBar,
  hostLocale,
  newConversation,
  reloadConversation,
  SELECTORS,
  sendPickedCommand,
  showConversation,
} from './host'

const BUTTON_CLASS = 'astrbot-live-mode-btn'
const OVERLAY_ID = 'astrbot-live-mode-overlay'
const GIVE_UP_MS = 8000 // on a chat route with no input bar by then: another host version, leave it
// This file is <prefix>/live/assets/webchat-<hash>.js, so the Live page is one folder up.
const LIVE_BASE = new URL(/* @vite-ignore */ '../', import.meta.url).toString()
const SVG_NS = 'http://www.w3.org/2000/svg'
// Lucide "audio-lines" and "x" (ISC), drawn like the host's own lucide icons.
const ICON_WAVE = ['M2 10v3', 'M6 6v11', 'M10 3v18', 'M14 8v7', 'M18 5v13', 'M22 10v3']
const ICON_CLOSE = ['M18 6 6 18', 'm6 6 12 12']

let labels: Labels = labelsFor(hostLocale())
let overlay: { root: HTMLElement; frame: HTMLIFrameElement; route: ChatRoute; conversationId: string | null } | null =
  null
let busy = false // opening (starting a conversation) or closing (reloading WebChat)

// ------------------------------------------------------------------ the button

function icon(paths: string[], like: SVGElement | null): SVGSVGElement {
  const svg = document.createElementNS(SVG_NS, 'svg')
  const attrs: Record<string, string> = {
    xmlns: SVG_NS, width: '18', height: '18', viewBox: '0 0 24 24', fill: 'none', stroke: 'currentColor',
    'stroke-width': '1.75', 'stroke-linecap': 'round', 'stroke-linejoin': 'round', 'aria-hidden': 'true',
  } // prettier-ignore
  for (const attr of like ? Array.from(like.attributes) : []) {
    if (attr.name.startsWith('data-v-') || ['width', 'height', 'stroke-width'].includes(attr.name)) {
      attrs[attr.name] = attr.value // the host's scoped-style marker and icon size
    }
  }
  for (const [k, v] of Object.entries(attrs)) svg.setAttribute(k, v)
  for (const d of paths) {
    const path = document.createElementNS(SVG_NS, 'path')
    path.setAttribute('d', d)
    svg.appendChild(path)
  }
  return svg
}

/** A copy of the host's icon button (same classes, same scoped-style markers) with our icon. */
function cloneIconButton(template: HTMLButtonElement, paths: string[], label: string, extraClass: string): HTMLButtonElement {
  const button = template.cloneNode(true) as HTMLButtonElement
  for (const attr of Array.from(button.attributes)) {
    if (attr.name.startsWith('aria-') || attr.name === 'id' || attr.name === 'disabled') button.removeAttribute(attr.name)
  }
  button.className = buttonClasses(template.classList, extraClass).join(' ')
  button.type = 'button'
  button.setAttribute('aria-label', label)
  button.title = label
  const content = button.querySelector('.v-btn__content') ?? button
  const hostIcon = template.querySelector('svg')
  content.replaceChildren(icon(paths, hostIcon))
  return button
}

function syncLook(button: HTMLButtonElement, template: HTMLButtonElement): void {
  const wanted = buttonClasses(template.classList, BUTTON_CLASS).join(' ')
  if (button.className !== wanted) button.className = wanted // theme switches re-class the host's buttons
  if (button.getAttribute('aria-label') !== labels.open) {
    button.setAttribute('aria-label', labels.open)
    button.title = labels.open
  }
}

/** Puts the button in the input bar if it is not there; true when the bar is there. */
function ensureButton(): boolean {
  const bar = findInputBar()
  if (!bar) return false
  let button = bar.actions.querySelector<HTMLButtonElement>(`.${BUTTON_CLASS}`)
  if (!button) {
    button = cloneIconButton(bar.template, ICON_WAVE, labels.open, BUTTON_CLASS)
    button.addEventListener('click', (event) => {
      event.preventDefault()
      event.stopPropagation()
      safely(() => openLive(null))
    })
    bar.actions.insertBefore(button, bar.template)
  }
  syncLook(button, bar.template)
  return true
}

// ------------------------------------------------------------------ watching WebChat

// The host's router changes routes with pushState (no hashchange), and Vue re-renders the input
// bar at will, so one observer checks after DOM changes (at most once a frame) that the button is
// there. On a chat route with no input bar after GIVE_UP_MS, it stops trying until the route changes.
let scheduled = false
let watchedRoute = ''
let watchedSince = 0
let gaveUpOn = ''

function check(): void {
  scheduled = false
  if (!currentRoute()) {
    watchedRoute = ''
    return
  }
  const route = window.location.hash
  if (route !== watchedRoute) [watchedRoute, watchedSince] = [route, performance.now()]
  if (route === gaveUpOn) return
  if (ensureButton()) watchedSince = performance.now()
  else if (performance.now() - watchedSince > GIVE_UP_MS) gaveUpOn = route
}

function scheduleCheck(): void {
  if (scheduled) return
  scheduled = true
  window.requestAnimationFrame(() => safely(check))
}

/** Never break the host's page: whatever fails here leaves WebChat as the host made it. */
function safely(action: () => unknown): void {
  try {
    const result = action()
    if (result instanceof Promise) result.catch(() => undefined)
  } catch {
    // left as the host made it
  }
}

// ------------------------------------------------------------------ the overlay

function overlayBar(template: HTMLButtonElement | null): HTMLElement {
  const bar = document.createElement('div')
  bar.style.cssText =
    'display:flex;align-items:center;gap:8px;height:48px;padding:0 8px 0 16px;flex:none;' +
    'border-bottom:1px solid rgba(var(--v-border-color,0,0,0),var(--v-border-opacity,0.12))'
  const title = document.createElement('div')
  title.textContent = labels.title
  title.style.cssText = 'flex:1;font-weight:600;font-size:15px'
  const close = template
    ? cloneIconButton(template, ICON_CLOSE, labels.close, 'astrbot-live-mode-close')
    : Object.assign(document.createElement('button'), { type: 'button', textContent: '×' })
  close.setAttribute('aria-label', labels.close)
  close.title = labels.close
  close.addEventListener('click', () => safely(closeLive))
  bar.append(title, close)
  return bar
}

async function openLive(linked: string | null): Promise<void> {
  if (overlay || busy) return
  const route = currentRoute() ?? { view: 'chat' as const, conversationId: null }
  let conversationId = linked ?? route.conversationId
  if (!conversationId) {
    busy = true // a second click while the conversation is being made must not make another
    try {
      conversationId = await newConversation() // as WebChat does when you send the first message
      if (conversationId) await showConversation(route, conversationId)
    } finally {
      busy = false
    }
  }
  const template = findInputBar()?.template ?? null
  const root = document.createElement('div')
  root.id = OVERLAY_ID
  root.setAttribute('role', 'dialog')
  root.setAttribute('aria-modal', 'true')
  root.setAttribute('aria-label', labels.title)
  const theme = template ? themeClass(template.classList) : null
  if (theme) root.classList.add(theme) // the host's colour variables for light or dark
  root.style.cssText =
    'position:fixed;inset:0;z-index:2400;display:flex;flex-direction:column;' +
    'background:rgb(var(--v-theme-surface,255,255,255));color:rgb(var(--v-theme-on-surface,0,0,0))'
  const frame = document.createElement('iframe')
  frame.title = labels.title
  frame.allow = 'microphone; autoplay'
  frame.src = liveFrameUrl(LIVE_BASE, conversationId)
  frame.style.cssText = 'flex:1;width:100%;border:0;display:block;background:transparent'
  root.append(overlayBar(template), frame)
  document.body.appendChild(root)
  overlay = { root, frame, route: { ...route, conversationId }, conversationId }
  frame.addEventListener('load', () => frame.focus(), { once: true })
  frame.focus()
}

async function closeLive(): Promise<void> {
  if (!overlay || busy) return
  busy = true
  const { root, frame, route, conversationId } = overlay
  try {
    frame.remove() // ends the Live page: its socket and microphone go with it
    // WebChat reads the conversation again (with the live turns) while the overlay still covers it.
    if (conversationId) await reloadConversation(route, conversationId)
  } finally {
    root.remove()
    overlay = null
    busy = false
    document.querySelector<HTMLButtonElement>(`.${BUTTON_CLASS}`)?.focus()
  }
}

// ------------------------------------------------------------------ events

function onMessage(event: MessageEvent): void {
  if (!overlay || event.origin !== window.location.origin) return
  if (event.source !== overlay.frame.contentWindow || !isCloseMessage(event.data)) return
  safely(closeLive)
}

function onKeyDown(event: KeyboardEvent): void {
  if (overlay) {
    if (event.key === 'Escape') {
      event.preventDefault()
      event.stopPropagation()
      safely(closeLive)
    }
    return
  }
  const target = event.target
  if (
    event.key === 'Enter' && !event.shiftKey && !event.isComposing &&
    target instanceof HTMLTextAreaElement && target.matches(SELECTORS.textarea) && isLiveCommand(target.value)
  ) {
    sendPickedCommand(target, isLiveCommand) // prettier-ignore
  }
}

function onClick(event: MouseEvent): void {
  if (event.defaultPrevented || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) {
    return // a new tab or window: the Live page on its own, as the link says
  }
  const link = event.target instanceof Element ? event.target.closest<HTMLAnchorElement>('a[href]') : null
  if (!link || !currentRoute() || !findInputBar()) return
  const conversationId = liveLinkConversation(link.href, LIVE_BASE)
  if (!conversationId) return
  event.preventDefault()
  event.stopPropagation()
  safely(() => openLive(conversationId))
}

function start(): void {
  const observer = new MutationObserver(scheduleCheck)
  observer.observe(document.body, { childList: true, subtree: true, attributes: true, attributeFilter: ['class'] })
  window.addEventListener('hashchange', scheduleCheck)
  window.addEventListener('popstate', scheduleCheck)
  window.addEventListener('message', (event) => safely(() => onMessage(event)))
  window.addEventListener('keydown', (event) => safely(() => onKeyDown(event)), true)
  document.addEventListener('click', (event) => safely(() => onClick(event)), true)
  window.addEventListener('astrbot-locale-changed', (event) =>
    safely(() => {
      labels = labelsFor((event as CustomEvent<{ locale?: string }>).detail?.locale ?? hostLocale())
      scheduleCheck()
    }),
  )
  scheduleCheck()
}

safely(start)
