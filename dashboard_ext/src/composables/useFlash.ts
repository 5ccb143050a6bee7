import { onScopeDispose, ref, watch, type Ref } from 'vue'

/**
 * True for `ms` after each change of `counter` (a new one restarts the time): one slot, so
 * notices that come fast replace each other instead of piling up.
 */
export function useFlash(counter: () => number, ms = 2500): Ref<boolean> {
  const on = ref(false)
  let timer: ReturnType<typeof setTimeout> | undefined
  watch(counter, () => {
    on.value = true
    clearTimeout(timer)
    timer = setTimeout(() => (on.value = false), ms)
  })
  onScopeDispose(() => clearTimeout(timer))
  return on
}
