import { assert, describe, layer } from "@effect/vitest"
import { Effect, Fiber, Schedule } from "effect"
import { BucketNames, jobLeaseKey } from "../../domain/subjects.ts"
import { openBucket } from "../../infra/nats/buckets.ts"
import { withLease } from "../../infra/nats/lease.ts"
import { tryNats } from "../../infra/nats/Nats.ts"
import { layerTestNats } from "../fixtures/nats.ts"

/** A job that records while it runs. */
const tracker = () => {
  const state = { running: [] as Array<string>, most: 0, started: [] as Array<string> }
  const job = (who: string) =>
    Effect.acquireRelease(
      Effect.sync(() => {
        state.running.push(who)
        state.started.push(who)
        state.most = Math.max(state.most, state.running.length)
      }),
      () => Effect.sync(() => void state.running.splice(state.running.indexOf(who), 1))
    ).pipe(Effect.andThen(Effect.never), Effect.scoped)
  return { state, job }
}

const until = (check: () => boolean) =>
  Effect.suspend(() => (check() ? Effect.void : Effect.fail("not yet" as const))).pipe(
    Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo({ times: 400 })))
  )

layer(layerTestNats(), { excludeTestServices: true, timeout: 60_000 })("lease", (it) => {
  describe("a job that must run once", () => {
    it.effect("runs in one holder at a time; the next takes over when the first gives the lease back", () =>
      Effect.gen(function*() {
        const { state, job } = tracker()
        const a = yield* Effect.forkChild(withLease("one", job("a")))
        yield* until(() => state.running.includes("a"))
        const b = yield* Effect.forkChild(withLease("one", job("b")))
        yield* Effect.sleep("500 millis")
        assert.deepStrictEqual(state.running, ["a"], "b waits")
        yield* Fiber.interrupt(a)
        yield* until(() => state.running.includes("b"))
        assert.strictEqual(state.most, 1)
        yield* Fiber.interrupt(b)
      }))

    it.effect("stops the job when the lease is taken from it, and waits for the lease again", () =>
      Effect.gen(function*() {
        const { state, job } = tracker()
        const a = yield* Effect.forkChild(withLease("two", job("a")))
        yield* until(() => state.running.includes("a"))
        // someone else takes the lease (as after a long pause of a's process)
        const leases = yield* openBucket(BucketNames.leases)
        yield* tryNats("steal", () => leases.put(jobLeaseKey("two"), "thief-4242-abcdef") /* a holder id: other values hold no lease */)
        yield* until(() => state.running.length === 0)
        assert.deepStrictEqual(state.started, ["a"])
        yield* Fiber.interrupt(a)
      }))
  })
})
