import { createVuetify, type ThemeDefinition } from 'vuetify'
import { aliases, mdi } from 'vuetify/iconsets/mdi-svg'
import 'vuetify/styles'
import { readDashboardPref } from '../lib/prefs'

// The AstrBot dashboard's palette (PurpleTheme / PurpleThemeDark in its Vuetify setup).
const light: ThemeDefinition = {
  dark: false,
  colors: {
    primary: '#3c96ca',
    secondary: '#2f86bd',
    info: '#03c9d7',
    success: '#00c853',
    warning: '#ffc107',
    error: '#f44336',
    background: '#f5f7fa',
    surface: '#ffffff',
    lightprimary: '#e8f3fa',
    lighterror: '#f9d8d8',
    orbHear: '#00a86b',
    orbThink: '#8e6fd8',
  },
}

const dark: ThemeDefinition = {
  dark: true,
  colors: {
    primary: '#5ba4d4',
    secondary: '#4a95c4',
    info: '#03c9d7',
    success: '#52c41a',
    warning: '#faad14',
    error: '#ff4d4f',
    background: '#1a1a1a',
    surface: '#242424',
    lightprimary: '#1a2e3d',
    lighterror: '#3d1a1a',
    orbHear: '#3ccf8e',
    orbThink: '#a78bfa',
  },
}

// Follow a custom primary colour chosen in the dashboard, if any.
const customPrimary = readDashboardPref('themePrimary')
if (customPrimary) {
  light.colors!.primary = customPrimary
  dark.colors!.primary = customPrimary
}

export const vuetify = createVuetify({
  icons: { defaultSet: 'mdi', aliases, sets: { mdi } },
  theme: { defaultTheme: 'liveLight', themes: { liveLight: light, liveDark: dark } },
  defaults: {
    VCard: { rounded: 'lg' },
    VBtn: { style: 'text-transform: none; letter-spacing: normal;' },
    VTooltip: { location: 'bottom' },
  },
})
