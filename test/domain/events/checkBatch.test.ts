/**
 * checkBatch (domain/events/eventChecks.ts): each event of a batch checked on its own, in order, and the
 * fibers beside it let run while a long batch is checked (stop 31's outside attack: 10,000 events costly
 * to check held the event loop ~1 s in one go).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { checkBatch } from "../../../domain/events/eventChecks.ts"

const now = Date.parse("2026-11-30T12:00:00Z")
const event = (seq: unknown) => ({ deviceId: "d-1", seq, time: "2026-11-30T11:00:00Z", type: "open" })
const json = (value: unknown) => ({ _tag: "Json" as const, value })

describe("checkBatch", () => {
  it.effect("rejects each bad event with its index and reason, keeps the rest in order, and yields while it checks", () =>
    Effect.gen(function*() {
      const items = Array.from({ length: 1_000 }, (_, i) =>
        i % 2 === 0 ? json(event(i)) : i % 3 === 0 ? { _tag: "NotJson" as const, reason: "event: not valid JSON" } : json(event("x")))
      let ticks = 0
      let checking = true
      const beside = yield* Effect.forkChild(Effect.gen(function*() {
        while (checking) {
          ticks++
          yield* Effect.yieldNow
        }
      }))
      const { accepted, rejected } = yield* checkBatch(items, now, { maxEventBytes: 65_536 })
      checking = false
      yield* Fiber.join(beside)
      assert.deepStrictEqual(accepted.map((a) => a.event.seq), Array.from({ length: 500 }, (_, i) => 2 * i))
      assert.deepStrictEqual(rejected.map((r) => r.index), Array.from({ length: 500 }, (_, i) => 2 * i + 1))
      assert.strictEqual(rejected.find((r) => r.index === 3)?.reason, "event: not valid JSON")
      assert.match(rejected.find((r) => r.index === 1)?.reason ?? "", /^seq: /)
      // a slice of 200 events between yields: the fiber beside it ran while the 1,000 were checked
      assert.isAtLeast(ticks, 3)
    }))
})
