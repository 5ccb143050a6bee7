/** Page preferences in localStorage, under our own prefix; storage failures are ignored. */

const PREFIX = 'astrbot-live:'

export function readPref(key: string): string | null {
  try {
    return localStorage.getItem(PREFIX + key)
  } catch {
    return null
  }
}

export function writePref(key: string, value: string): void {
  try {
    localStorage.setItem(PREFIX + key, value)
  } catch {
    // private mode or storage disabled: the preference just does not persist
  }
}

/** Read a key the AstrBot dashboard itself stores (e.g. "astrbot-locale", "themePrimary"). */
export function readDashboardPref(key: string): string | null {
  try {
    return localStorage.getItem(key)
  } catch {
    return null
  }
}
