/**
 * DELIVERY_MAX_LANES: the lanes of all destinations together, at most. Each lane is a deliverer with its
 * own consumer on DELIVER, lease and timers, which cost CPU even while it has nothing to send (~0.045% of
 * a core and 0.018% of nats-server's a lane: 800 idle lanes took 36% and 15%, stop 28's outside attack),
 * so a key that may write destinations could otherwise take the machine with thousands of them.
 *
 * Checked when a write adds lanes (a destination created, or its `lanes` raised): past the bound, 409
 * naming `lanes`. A write that keeps or lowers them passes, even over a bound lowered since. Checked
 * one write at a time in a process, against the read model's list overlaid with what this process's
 * writes set in the last 30 s (the list follows a change a moment after its answer); two processes
 * writing at the same instant may together pass the bound by their writes in flight.
 */
import { Clock, Effect, Semaphore } from "effect"
import { lanesByDestination } from "../../projections/delivery/destinationLanes.ts"
import { LimitReached } from "../problems.ts"

/** How long a write's lanes stand in for the read model's list. */
const overlayMs = 30_000

export const makeLaneQuota = (maxLanes: number) => {
  const lock = Semaphore.makeUnsafe(1)
  const written = new Map<string, { readonly lanes: number; readonly at: number }>()

  /** Records that `destination` has `lanes` after a write (0: deleted); refused when that adds lanes past the bound. */
  const set = (destination: string, lanes: number, before: number) =>
    lock.withPermit(Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      for (const [id, entry] of written) if (now - entry.at > overlayMs) written.delete(id)
      if (lanes > before) {
        const all = new Map(yield* lanesByDestination)
        for (const [id, entry] of written) all.set(id, entry.lanes)
        all.delete(destination)
        let others = 0
        for (const count of all.values()) others += count
        if (others + lanes > maxLanes) {
          const message = `destinations have at most ${maxLanes} lanes in all (DELIVERY_MAX_LANES); the others have ${others}, so this one may have at most ${Math.max(0, maxLanes - others)}`
          return yield* new LimitReached({ detail: message, issues: [{ path: ["lanes"], message }] })
        }
      }
      written.set(destination, { lanes, at: now })
    }))

  /** Records that `destination` was deleted: its lanes are free at once, whatever the list still shows. */
  const release = (destination: string) =>
    lock.withPermit(Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => void written.set(destination, { lanes: 0, at: now }))))

  return { set, release }
}
