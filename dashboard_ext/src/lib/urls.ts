/**
 * URLs derived from where the page is served: <prefix>/live/ on the dashboard origin,
 * where <prefix> is empty or a reverse-proxy path such as /astrbot.
 */

/** Path prefix before /live/ (no trailing slash), e.g. "" or "/astrbot". */
export function pathPrefix(pathname: string): string {
  const match = /^(.*?)\/live(?:\/|$)/.exec(pathname)
  if (match) return match[1]
  return pathname.replace(/\/[^/]*$/, '')
}

export interface PageParams {
  /** Token given in the page URL (kiosk / overlay use); overrides localStorage. */
  token: string | null
  conversation_id: string | null
  room: string | null
  /** The page is shown inside another one: `webchat` = the host's WebChat overlay. */
  embed: 'webchat' | null
}

export function pageParams(search: string): PageParams {
  const q = new URLSearchParams(search)
  return {
    token: q.get('token'),
    conversation_id: q.get('conversation_id'),
    room: q.get('room'),
    embed: q.get('embed') === 'webchat' ? 'webchat' : null,
  }
}

/** ws(s)://host<prefix>/api/v1/live/ws?token=...&conversation_id=...&room=... */
export function liveSocketUrl(loc: Pick<Location, 'protocol' | 'host' | 'pathname'>, params: Record<string, string | null | undefined>): string {
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:'
  const q = new URLSearchParams()
  for (const [key, value] of Object.entries(params)) if (value) q.set(key, value)
  const qs = q.toString()
  return `${scheme}//${loc.host}${pathPrefix(loc.pathname)}/api/v1/live/ws${qs ? `?${qs}` : ''}`
}

export interface OverlayParams {
  room: string
  /** A dashboard JWT (expires), or… */
  token?: string
  /** …an API key with the username it speaks for (lasts until revoked). */
  api_key?: string
  username?: string
  /** Let the overlay play the character's voice (OBS then streams it). */
  audio?: boolean
}

/** The OBS overlay page for a room: <origin><prefix>/live/overlay?room=…&token=… */
export function overlayUrl(loc: Pick<Location, 'protocol' | 'host' | 'pathname'>, p: OverlayParams): string {
  const q = new URLSearchParams({ room: p.room })
  if (p.token) q.set('token', p.token)
  if (p.api_key) q.set('api_key', p.api_key)
  if (p.username) q.set('username', p.username)
  if (p.audio) q.set('audio', '1')
  return `${loc.protocol}//${loc.host}${pathPrefix(loc.pathname)}/live/overlay?${q}`
}

/** The AstrBot dashboard (hash router) at the same prefix. */
export function dashboardUrl(loc: Pick<Location, 'protocol' | 'host' | 'pathname'>, route = ''): string {
  return `${loc.protocol}//${loc.host}${pathPrefix(loc.pathname)}/${route ? `#${route}` : ''}`
}

/** The dashboard login page. (The 4.29 dashboard ignores redirect parameters after login.) */
export function loginUrl(loc: Pick<Location, 'protocol' | 'host' | 'pathname'>): string {
  return dashboardUrl(loc, '/auth/login')
}
