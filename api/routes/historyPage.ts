/**
 * A page of history read in slices, for `GET /v1/history` and `…/{id}/history`: at most `limit` events
 * and, past the first slice, at most `maxPageChars` characters of them, giving way to the event loop
 * between slices (the store's reads are synchronous: one 1,000-event read must not hold the relay's and
 * the leases' timers for its whole length). A page cut by its characters says where the next begins, as
 * one cut by `limit` does. Events are as large as their commands made them (an `Apply` of 2,000 records
 * is a ~600 KB event): before stop 28 a page was bounded by its count alone, and 1,000 such events made
 * one 64 MB answer; 24 of them at once took the platform to 2 GB of RSS and `/ready` to 503.
 */
import { Effect } from "effect"

/** Characters of events one page answers at most (past its first slice, which is at most `firstSlice` events). */
export const maxPageChars = 8 * 1024 * 1024

/** Events of the first slice: few, until their size is known. Later slices hold what fits, up to `maxSlice`. */
const firstSlice = 10
const maxSlice = 100

/**
 * Reads slices with `slice(count, last)` (`last`: the last event read so far, none at first), each `more`
 * when the store may hold events after it, until `limit` events, `maxPageChars`, or the end; `more`:
 * whether events may follow the page (the next page begins after its last event).
 */
export const readHistoryPage = <A, E, R>(
  limit: number,
  slice: (count: number, last: A | undefined) => Effect.Effect<{ readonly events: ReadonlyArray<A>; readonly more: boolean }, E, R>
) =>
  Effect.gen(function*() {
    const events: Array<A> = []
    let chars = 0
    let count = Math.min(limit, firstSlice)
    for (;;) {
      const read = yield* slice(count, events[events.length - 1])
      events.push(...read.events)
      if (!read.more) return { events, more: false }
      chars += JSON.stringify(read.events).length
      if (events.length >= limit || chars >= maxPageChars) return { events, more: true }
      const perEvent = chars / events.length
      count = Math.max(1, Math.min(maxSlice, limit - events.length, Math.floor((maxPageChars - chars) / perEvent)))
      yield* Effect.yieldNow
    }
  })
