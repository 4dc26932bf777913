/**
 * A bound on bytes held at once by the requests of one kind in a process (the app events' bodies:
 * EVENTS_INFLIGHT_MAX_BYTES), taken as a body's bytes arrive and given back when its request ends.
 * Past it, a request is refused (503 + Retry-After) rather than read on: before, found by an outside
 * attack, 80 gzipped bodies of 60 KB inflating to 8 MiB each, sent at once with one SDK key, took the
 * process to 5 GB of RSS and stalled its event loop until every lease lapsed.
 */
export interface ByteBudget {
  /** Takes `bytes` if they fit beside what is held; false if they do not (nothing taken). */
  readonly take: (bytes: number) => boolean
  /** Gives back bytes taken. */
  readonly give: (bytes: number) => void
  readonly maxBytes: number
}

export const makeByteBudget = (maxBytes: number): ByteBudget => {
  let held = 0
  return {
    maxBytes,
    take: (bytes) => {
      if (held + bytes > maxBytes) return false
      held += bytes
      return true
    },
    give: (bytes) => {
      held -= bytes
    }
  }
}
