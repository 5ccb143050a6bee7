import { computed, getCurrentScope, onScopeDispose, shallowRef, watchEffect } from 'vue'
import { useTheme } from 'vuetify'
import { readPref, writePref } from '../lib/prefs'

export type ThemeMode = 'system' | 'light' | 'dark'
const ORDER: ThemeMode[] = ['system', 'light', 'dark']

/** Light/dark theme: follows prefers-color-scheme unless the user picked one (remembered). */
export function useThemeMode() {
  const theme = useTheme()
  const saved = readPref('theme')
  const mode = shallowRef<ThemeMode>(ORDER.includes(saved as ThemeMode) ? (saved as ThemeMode) : 'system')
  const media = window.matchMedia?.('(prefers-color-scheme: dark)')
  const systemDark = shallowRef(media?.matches ?? false)
  const onChange = (ev: MediaQueryListEvent) => (systemDark.value = ev.matches)
  media?.addEventListener('change', onChange)
  if (getCurrentScope()) onScopeDispose(() => media?.removeEventListener('change', onChange))

  const isDark = computed(() => (mode.value === 'system' ? systemDark.value : mode.value === 'dark'))
  watchEffect(() => {
    theme.global.name.value = isDark.value ? 'liveDark' : 'liveLight'
    document.documentElement.dataset.theme = isDark.value ? 'dark' : 'light'
    document.querySelector('meta[name="theme-color"]')?.setAttribute('content', isDark.value ? '#1a1a1a' : '#f5f7fa')
  })

  function cycle(): void {
    mode.value = ORDER[(ORDER.indexOf(mode.value) + 1) % ORDER.length]
    writePref('theme', mode.value)
  }

  return { mode, isDark, cycle }
}
