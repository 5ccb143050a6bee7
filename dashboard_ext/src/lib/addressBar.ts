/** Mirror a page setting into the address bar, so a reload keeps it (no history entry). */
export function setPageParam(key: string, value: string | null): void {
  if (typeof window === 'undefined') return
  const url = new URL(window.location.href)
  if (url.searchParams.get(key) === value) return
  if (value) url.searchParams.set(key, value)
  else url.searchParams.delete(key)
  window.history.replaceState(window.history.state, '', url)
}
