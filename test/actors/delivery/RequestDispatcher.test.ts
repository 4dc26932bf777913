import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { makeRequestDispatcher } from "../../../actors/delivery/RequestDispatcher.ts"

interface Request {
  readonly id: string
  readonly users: ReadonlyArray<string>
}

const request = (id: string, ...users: Array<string>): Request => ({ id, users })

describe("the request dispatcher", () => {
  it.effect("hands requests out in order, one per user at a time, none overtaking one whose user is busy", () =>
    Effect.gen(function*() {
      const dispatcher = makeRequestDispatcher<Request>()
      // senders waiting before anything is queued get the first requests
      const early = yield* Effect.forkChild(dispatcher.next, { startImmediately: true })
      dispatcher.add([request("r1", "a"), request("r2", "b", "c"), request("r3", "a"), request("r4", "d")])
      const r1 = yield* Fiber.join(early)
      const r2 = yield* dispatcher.next
      assert.deepStrictEqual([r1.id, r2.id], ["r1", "r2"])

      // r3 names a, busy with r1: neither r3 nor r4 behind it goes
      const third = yield* Effect.forkChild(dispatcher.next, { startImmediately: true })
      const fourth = yield* Effect.forkChild(dispatcher.next, { startImmediately: true })
      assert.isUndefined(third.pollUnsafe())
      assert.isUndefined(fourth.pollUnsafe())
      dispatcher.answered(r2)
      assert.isUndefined(third.pollUnsafe())
      dispatcher.answered(r1)
      const handed = [(yield* Fiber.join(third)).id, (yield* Fiber.join(fourth)).id].sort()
      assert.deepStrictEqual(handed, ["r3", "r4"])
    }))
})
