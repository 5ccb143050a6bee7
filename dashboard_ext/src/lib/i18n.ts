import { ref } from 'vue'
import { en, zh, type Messages } from './messages'
import { readDashboardPref, readPref, writePref } from './prefs'

export type Locale = 'en' | 'zh'

const catalogs: Record<Locale, Messages> = { en, zh }

/** Our own choice first, then the dashboard's language, then the browser's. */
function initialLocale(): Locale {
  const saved = readPref('locale')
  if (saved === 'en' || saved === 'zh') return saved
  const dashboard = readDashboardPref('astrbot-locale')
  const lang = dashboard ?? (typeof navigator !== 'undefined' ? navigator.language : 'en')
  return lang.toLowerCase().startsWith('zh') ? 'zh' : 'en'
}

export const locale = ref<Locale>(initialLocale())

export function setLocale(next: Locale): void {
  locale.value = next
  writePref('locale', next)
  if (typeof document !== 'undefined') document.documentElement.lang = next === 'zh' ? 'zh-CN' : 'en'
}

/** Look up a dotted key in the current catalog, then English; fill `{name}` placeholders. */
export function t(key: string, params: Record<string, string | number> = {}): string {
  const find = (catalog: Messages): unknown =>
    key.split('.').reduce<unknown>((node, part) => (node && typeof node === 'object' ? (node as Record<string, unknown>)[part] : undefined), catalog)
  const raw = find(catalogs[locale.value]) ?? find(en)
  const text = typeof raw === 'string' ? raw : key
  return text.replace(/\{(\w+)\}/g, (_, name: string) => String(params[name] ?? `{${name}}`))
}
