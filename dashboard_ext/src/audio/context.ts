/**
 * One AudioContext for the page, shared by capture and playback, created lazily.
 * Browsers start it suspended until a user gesture unless autoplay is allowed;
 * `unlockOnGesture` resumes it on the first pointer or key press.
 */
let shared: AudioContext | null = null

export function sharedAudioContext(): AudioContext {
  if (!shared) shared = new AudioContext({ latencyHint: 'interactive' })
  return shared
}

export function audioContextIfCreated(): AudioContext | null {
  return shared
}

export function unlockOnGesture(onUnlocked?: () => void): () => void {
  const resume = () => {
    const ctx = sharedAudioContext()
    if (ctx.state !== 'running') void ctx.resume().then(() => onUnlocked?.())
  }
  const events = ['pointerdown', 'keydown', 'touchend'] as const
  events.forEach((e) => window.addEventListener(e, resume, { capture: true }))
  return () => events.forEach((e) => window.removeEventListener(e, resume, { capture: true }))
}
