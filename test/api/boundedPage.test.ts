/**
 * readBoundedPage (api/routes/boundedPage.ts) over an in-memory list whose positions are not contiguous,
 * as EventStoreDB's are: a page cut by its bound resumes at the first item it left out, a real position
 * (before, stop 28's last re-attack found by reading: `position + 1`, which on EventStoreDB names no event),
 * and paging on lists every item once, each page within its bound.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { maxPageChars, readBoundedPage } from "../../api/routes/boundedPage.ts"

interface Item { readonly position: number; readonly body: string }

/** 60 items at positions 10, 20, …, each 20 KB larger than the one before (a slice sized by those before it then passes the bound inside it): 36 MB in all. */
const items: ReadonlyArray<Item> = Array.from({ length: 60 }, (_, i) => ({ position: (i + 1) * 10, body: "x".repeat(20_000 * (i + 1)) }))

/** The store's read: `count` items from `position` (inclusive), and the position of the next one. */
const slice = (count: number, from: number) =>
  Effect.sync(() => {
    const start = items.findIndex((item) => item.position >= from)
    const found = start === -1 ? [] : items.slice(start, start + count)
    const next = start === -1 ? undefined : items[start + count]?.position
    return { items: found, more: next !== undefined, next: next ?? 0 }
  })

describe("readBoundedPage", () => {
  it.effect("resumes a page cut by its bound at the first item it left out, and pages on through every item once", () =>
    Effect.gen(function*() {
      const seen: Array<number> = []
      let pages = 0
      for (let from: number | undefined = 0; from !== undefined; pages++) {
        const page: { readonly items: ReadonlyArray<Item>; readonly more: boolean; readonly next: number } =
          yield* readBoundedPage(1_000, from, slice, (_last: Item, next: Item) => next.position)
        assert.isAtMost(JSON.stringify(page.items).length, maxPageChars + 1_300_000)
        seen.push(...page.items.map((item: Item) => item.position))
        if (page.more) assert.isTrue(items.some((item) => item.position === page.next), `resumes at ${page.next}, which names an item`)
        from = page.more ? page.next : undefined
      }
      assert.isAbove(pages, 1)
      assert.deepStrictEqual(seen, items.map((item) => item.position))
    }))
})
