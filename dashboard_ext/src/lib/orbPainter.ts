/**
 * Draws the Live orb on a 2D canvas: a soft glow, a breathing blob deformed by the audio
 * level, ripples while the user speaks and a travelling arc while connecting or thinking.
 */
import type { OrbState } from '../composables/useLiveSession'

export type Rgb = [number, number, number]

export interface OrbFrame {
  state: OrbState
  /** 0..1, already smoothed. */
  level: number
  color: Rgb
  /** Seconds since start. */
  time: number
  muted: boolean
  reducedMotion: boolean
}

export function hexToRgb(hex: string): Rgb {
  const h = hex.replace('#', '')
  const full = h.length === 3 ? [...h].map((c) => c + c).join('') : h.slice(0, 6)
  const n = parseInt(full, 16)
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255]
}

export function mixRgb(a: Rgb, b: Rgb, k: number): Rgb {
  return [a[0] + (b[0] - a[0]) * k, a[1] + (b[1] - a[1]) * k, a[2] + (b[2] - a[2]) * k]
}

const rgba = (c: Rgb, a: number) => `rgba(${c[0] | 0},${c[1] | 0},${c[2] | 0},${a})`
const lighten = (c: Rgb, k: number): Rgb => mixRgb(c, [255, 255, 255], k)

export function paintOrb(g: CanvasRenderingContext2D, size: number, f: OrbFrame): void {
  const cx = size / 2
  const cy = size / 2
  const unit = size / 2
  const motion = f.reducedMotion ? 0.25 : 1
  const breathe = Math.sin(f.time * 1.6) * 0.015 * motion
  const active = f.state === 'hearing' || f.state === 'speaking'
  const base = unit * (0.5 + breathe + f.level * (active ? 0.1 : 0.04))
  g.clearRect(0, 0, size, size)

  // Glow.
  // The glow must fade out inside the canvas, or its square edge shows.
  const glowR = Math.min(unit, base * (1.45 + f.level * 0.2))
  const glow = g.createRadialGradient(cx, cy, base * 0.7, cx, cy, glowR)
  glow.addColorStop(0, rgba(f.color, f.state === 'connecting' ? 0.12 : 0.28))
  glow.addColorStop(1, rgba(f.color, 0))
  g.fillStyle = glow
  g.beginPath()
  g.arc(cx, cy, glowR, 0, Math.PI * 2)
  g.fill()

  // Ripples while the user is heard.
  if (f.state === 'hearing' || (f.state === 'listening' && f.level > 0.05)) {
    for (let i = 0; i < 3; i++) {
      const phase = (f.time * 0.7 * motion + i / 3) % 1
      g.strokeStyle = rgba(f.color, (1 - phase) * (0.18 + f.level * 0.4))
      g.lineWidth = unit * 0.015
      g.beginPath()
      g.arc(cx, cy, Math.min(unit * 0.97, base * (1.02 + phase * 0.5)), 0, Math.PI * 2)
      g.stroke()
    }
  }

  // Blob: a circle with a few slow harmonics, stronger with the level.
  const wobble = (active ? 0.015 + f.level * 0.035 : 0.01) * motion
  g.beginPath()
  for (let i = 0; i <= 96; i++) {
    const a = (i / 96) * Math.PI * 2
    const r =
      base *
      (1 +
        wobble * Math.sin(3 * a + f.time * 1.9) +
        wobble * 0.7 * Math.sin(5 * a - f.time * 2.6) +
        wobble * 0.4 * Math.sin(2 * a + f.time * 1.1))
    const x = cx + Math.cos(a) * r
    const y = cy + Math.sin(a) * r
    if (i === 0) g.moveTo(x, y)
    else g.lineTo(x, y)
  }
  g.closePath()
  const body = g.createRadialGradient(cx - base * 0.35, cy - base * 0.4, base * 0.1, cx, cy, base * 1.05)
  const alpha = f.state === 'connecting' ? 0.55 : f.muted ? 0.7 : 1
  body.addColorStop(0, rgba(lighten(f.color, 0.55), alpha))
  body.addColorStop(0.55, rgba(lighten(f.color, 0.12), alpha))
  body.addColorStop(1, rgba(f.color, alpha))
  g.fillStyle = body
  g.fill()

  // Highlight.
  const shine = g.createRadialGradient(cx - base * 0.3, cy - base * 0.45, 0, cx - base * 0.3, cy - base * 0.45, base * 0.6)
  shine.addColorStop(0, 'rgba(255,255,255,0.35)')
  shine.addColorStop(1, 'rgba(255,255,255,0)')
  g.fillStyle = shine
  g.fill()

  // Travelling arc while connecting or thinking.
  if (f.state === 'connecting' || f.state === 'thinking') {
    const speed = f.state === 'thinking' ? 2.4 : 1.2
    const start = f.time * speed * (f.reducedMotion ? 0.3 : 1)
    g.strokeStyle = rgba(f.color, 0.85)
    g.lineWidth = unit * 0.03
    g.lineCap = 'round'
    g.beginPath()
    g.arc(cx, cy, Math.min(unit * 0.95, base * 1.2), start, start + Math.PI * 0.55)
    g.stroke()
  }
}
