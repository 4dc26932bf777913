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
  /**
   * slots one tenant (the keys of one partner, app or producer) may hold or wait for at once; none: no
   * share. Without it, one partner's key holding 2,048 real-time bodies open took every command slot of
   * the process, and every other partner, app and service was answered 503 (the outside attack of stop 20).
   */
  readonly perTenant?: number
}

/** Gives the slot back; calling it again does nothing. */
export type Release = () => void

export interface Admission {
  /** A slot, or Overloaded (with Retry-After) when none came in time, or `tenant` holds its share already. */
  readonly enter: (tenant?: string) => Promise<Release | Overloaded>
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

  const byTenant = new Map<string, number>()
  const leave = (tenant: string) => {
    const held = (byTenant.get(tenant) ?? 1) - 1
    if (held === 0) byTenant.delete(tenant)
    else byTenant.set(tenant, held)
  }

  const enter = (): Promise<Release | Overloaded> => {
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

  return {
    active: () => active,
    enter: (tenant) => {
      if (tenant === undefined || limit.perTenant === undefined) return enter()
      const held = byTenant.get(tenant) ?? 0
      if (held >= limit.perTenant) {
        return Promise.resolve(new Overloaded({ detail: `${tenant} has ${held} ${name} in progress, its most at once; retry later`, retryAfterSeconds: 1 }))
      }
      byTenant.set(tenant, held + 1) // counted while it waits too, so that its waiting requests cannot pass the share together
      return enter().then((entered) => {
        if (typeof entered !== "function") {
          leave(tenant)
          return entered
        }
        let holding = true
        return () => {
          if (!holding) return
          holding = false
          leave(tenant)
          entered()
        }
      })
    }
  }
}
