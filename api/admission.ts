/**
 * Admission: how many requests of a kind (commands, reads) a process works on at once. Up to
 * `capacity` go in; then up to `queue` wait, each at most `maxWaitMillis`, in arrival order; beyond
 * that, or once a wait runs out, the request is refused at once (503 + Retry-After), before its body
 * is read or decoded. A refusal costs a comparison, so an overloaded process answers the requests it
 * refuses as fast as it can take them, and what it admitted keeps the CPU.
 *
 * Plain callbacks rather than an Effect semaphore: it runs in a Fastify hook before any Effect of the
 * request, and a waiter either gets a slot or times out, never both (one thread decides).
 */
import { Overloaded } from "./problems.ts"

export interface AdmissionLimit {
  /** admitted at once */
  readonly capacity: number
  /** waiting at most, beyond those admitted (0: refuse at once when full) */
  readonly queue: number
  /** how long one may wait for a slot */
  readonly maxWaitMillis: number
}

/** Gives the slot back; calling it again does nothing. */
export type Release = () => void

export interface Admission {
  /** A slot, or Overloaded (with Retry-After) when none came in time. */
  readonly enter: () => Promise<Release | Overloaded>
  /** admitted now (for tests and metrics) */
  readonly active: () => number
}

export const make = (name: string, limit: AdmissionLimit): Admission => {
  let active = 0
  const waiting: Array<(release: Release) => void> = []

  const slot = (): Release => {
    let released = false
    return () => {
      if (released) return
      released = true
      // The slot passes straight to the first waiter, so a newcomer cannot overtake the queue.
      const next = waiting.shift()
      if (next === undefined) active--
      else next(slot())
    }
  }

  const refused = () =>
    new Overloaded({ detail: `${active} ${name} in progress and ${waiting.length} waiting; retry later`, retryAfterSeconds: 1 })

  return {
    active: () => active,
    enter: () => {
      if (active < limit.capacity) {
        active++
        return Promise.resolve(slot())
      }
      if (waiting.length >= limit.queue || limit.maxWaitMillis <= 0) return Promise.resolve(refused())
      return new Promise((resolve) => {
        const wake = (release: Release) => {
          clearTimeout(timer)
          resolve(release)
        }
        const timer = setTimeout(() => {
          waiting.splice(waiting.indexOf(wake), 1)
          resolve(refused())
        }, limit.maxWaitMillis)
        waiting.push(wake)
      })
    }
  }
}
