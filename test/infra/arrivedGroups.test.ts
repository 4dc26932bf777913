/**
 * Groups of what has arrived: a consumer behind takes every element waiting at once (up to the bound),
 * however the event loop is busy, so a pipeline behind commits fewer, larger batches.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { arrivedGroups } from "../../infra/arrivedGroups.ts"

/** Like a NATS consumer: elements arrive one by one, each a turn of the event loop after the other. */
async function* arriving(count: number) {
  for (let i = 0; i < count; i++) {
    await new Promise((resolve) => setImmediate(resolve))
    yield i
  }
}

/** Holds the event loop, as a batch's dedupe and commit do. */
const busy = (ms: number) => {
  const until = performance.now() + ms
  while (performance.now() < until) { /* busy */ }
}

describe("arrivedGroups", () => {
  it.live("a consumer slower than the source takes every element waiting, up to the bound, in order", () =>
    Effect.gen(function*() {
      const sizes: Array<number> = []
      const seen: Array<number> = []
      const groups = yield* arrivedGroups(Stream.fromAsyncIterable(arriving(64), (cause) => cause), 8)
      yield* groups.pipe(Stream.runForEach((group) =>
        Effect.gen(function*() {
          sizes.push(group.length)
          seen.push(...group)
          busy(20)
          yield* Effect.sleep("20 millis")
        })))
      assert.deepStrictEqual(seen, Array.from({ length: 64 }, (_, i) => i))
      assert.isTrue(sizes.every((n) => n <= 8), `a group over the bound: ${sizes}`)
      // once the consumer is behind (a first full group), every group is full but the last, which holds the rest
      const behind = sizes.indexOf(8)
      assert.isAtLeast(behind, 0, `groups ${sizes}`)
      assert.isTrue(sizes.slice(behind, -1).every((n) => n === 8), `groups ${sizes}`)
    }).pipe(Effect.scoped))
})
