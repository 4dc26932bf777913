/**
 * A page read in slices, for the routes that answer up to 1,000 items a page (history, entity lists,
 * dead letters): at most `limit` items and, past the first slice, at most `maxPageChars` characters of
 * them, giving way to the event loop between slices (the stores' reads are synchronous: one 1,000-item
 * read must not hold the relay's and the leases' timers for its whole length). A page cut by its
 * characters says where the next begins, as one cut by `limit` does. Items are as large as their writers
 * made them (an event of ~600 KB, a strategy of 10,000 segment ids, a dead letter of 1,000 records):
 * before stop 28 a page was bounded by its count alone, and such pages were answers of 64 MB to 230 MB;
 * a few at once took the platform to GBs of RSS, `/ready` to 503, and every shard's and lease's holder away.
 */
import { Effect } from "effect"

/** Characters of items one page answers at most (past its first slice, which is at most `firstSlice` items). */
export const maxPageChars = 8 * 1024 * 1024

/** Items of the first slice: few, until their size is known. Later slices hold what fits, up to `maxSlice`. */
const firstSlice = 10
const maxSlice = 100

/**
 * Reads slices with `slice(count, last)` (`last`: the last item read so far, none at first), each `more`
 * when the store may hold items after it, until `limit` items, `maxPageChars`, or the end; `more`:
 * whether items may follow the page (the next page begins after its last item).
 */
export const readBoundedPage = <A, E, R>(
  limit: number,
  slice: (count: number, last: A | undefined) => Effect.Effect<{ readonly items: ReadonlyArray<A>; readonly more: boolean }, E, R>
) =>
  Effect.gen(function*() {
    const items: Array<A> = []
    let chars = 0
    let count = Math.min(limit, firstSlice)
    for (;;) {
      const read = yield* slice(count, items[items.length - 1])
      items.push(...read.items)
      if (!read.more) return { items, more: false }
      chars += JSON.stringify(read.items).length
      if (items.length >= limit || chars >= maxPageChars) return { items, more: true }
      const perItem = chars / items.length
      count = Math.max(1, Math.min(maxSlice, limit - items.length, Math.floor((maxPageChars - chars) / perItem)))
      yield* Effect.yieldNow
    }
  })

/**
 * readBoundedPage over a store paged by a cursor (a position, a sequence): `read(count, cursor)` answers
 * a slice and the cursor after it (none at the end). Answers the page, and where the next one begins
 * (none when nothing follows).
 */
export const readCursorPage = <A, C, E, R>(
  limit: number,
  from: C | undefined,
  read: (count: number, cursor: C | undefined) => Effect.Effect<{ readonly items: ReadonlyArray<A>; readonly next?: C | undefined }, E, R>
) =>
  Effect.gen(function*() {
    let next = from
    const page = yield* readBoundedPage(limit, (count) =>
      Effect.map(read(count, next), (slice) => {
        next = slice.next
        return { items: slice.items, more: next !== undefined }
      }))
    return { items: page.items, next: page.more ? next : undefined }
  })
