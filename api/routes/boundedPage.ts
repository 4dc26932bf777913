/**
 * A page read in slices, for the routes that answer up to 1,000 items a page (history, entity lists,
 * dead letters): at most `limit` items and at most `maxPageChars` characters of them (one item at least),
 * giving way to the event loop between slices (the stores' reads are synchronous: one 1,000-item read
 * must not hold the relay's and the leases' timers for its whole length). A page cut by its characters
 * says where the next begins, as one cut by `limit` does. Items are as large as their writers made them
 * (an event of ~600 KB, a strategy of 10,000 segment ids, a dead letter of 1,000 records): before stop 28
 * a page was bounded by its count alone, and such pages were answers of 64 MB to 230 MB; a few at once
 * took the platform to GBs of RSS, `/ready` to 503, and every shard's and lease's holder away.
 */
import { Effect } from "effect"

/** Characters of items one page answers at most: past them the page ends (it holds one item at least). */
export const maxPageChars = 8 * 1024 * 1024

/**
 * Items of the first slice: few, until their size is known. A later slice holds at most twice the one
 * before, `maxSlice` at most, and what fits if each were as large as the largest seen: small items first
 * cannot make it read a hundred large ones (the re-attack of stop 28: 10 small events, then a slice of 100
 * of 230 KB, a 23 MB page), and a page ends at the item that takes it past its bound.
 */
const firstSlice = 10
const maxSlice = 100

/** A slice read from a store: its items, whether more may follow, and the cursor after it (when more). */
export interface Slice<A, C> {
  readonly items: ReadonlyArray<A>
  readonly more: boolean
  readonly next: C
}

/**
 * Reads slices with `slice(count, cursor)` from `from`, until `limit` items, `maxPageChars`, or the end;
 * `between(last, next)` is the cursor where the next page begins when a page ends inside a slice: after
 * `last`, the last item it holds, or at `next`, the first it leaves out (a store whose positions are not
 * contiguous, EventStoreDB's, is resumed at a real one). Answers the items, whether more may follow, and
 * the cursor the next page begins at.
 */
export const readBoundedPage = <A, C, E, R>(
  limit: number,
  from: C,
  slice: (count: number, cursor: C) => Effect.Effect<Slice<A, C>, E, R>,
  between: (last: A, next: A) => C
) =>
  Effect.gen(function*() {
    const items: Array<A> = []
    let chars = 0
    let largest = 0
    let cursor = from
    let count = Math.min(limit, firstSlice)
    for (;;) {
      const read = yield* slice(count, cursor)
      for (const item of read.items) {
        if (items.length > 0 && chars >= maxPageChars) return { items, more: true, next: between(items[items.length - 1]!, item) }
        const size = JSON.stringify(item).length
        items.push(item)
        chars += size
        largest = Math.max(largest, size)
      }
      if (!read.more) return { items, more: false, next: cursor }
      cursor = read.next
      if (items.length >= limit || chars >= maxPageChars) return { items, more: true, next: cursor }
      count = Math.max(1, Math.min(maxSlice, 2 * count, limit - items.length, Math.floor((maxPageChars - chars) / Math.max(1, largest))))
      yield* Effect.yieldNow
    }
  })
