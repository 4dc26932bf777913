/**
 * The device pipeline's watchdog (actors/events/pipelineWatchdog.ts) under TestClock, its looks at the
 * pipeline's work given as plain effects: work with no progress for `stallAfter` fails the pipeline;
 * quiet time does not count, however the arrival of work falls between its looks.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Exit, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { makeProgress, watchStalls } from "../../../actors/events/pipelineWatchdog.ts"

const stallAfter = Duration.seconds(60)

/** Work (batches on EVENTS) from `from` ms on, none before; no outbox. */
const watching = (from: number) =>
  Effect.gen(function*() {
    const progress = yield* makeProgress
    const since = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
    const eventsWaiting = Effect.map(Effect.clockWith((clock) => clock.currentTimeMillis), (now) => now - since >= from)
    const fiber = yield* Effect.forkChild(watchStalls("1", progress, { stallAfter, eventsWaiting, outboxWaiting: Effect.succeed(false) }))
    return { progress, fiber }
  })

describe("the device pipeline's watchdog", () => {
  it.effect("fails a pipeline with work and no progress for stallAfter", () =>
    Effect.gen(function*() {
      const { fiber } = yield* watching(0)
      yield* TestClock.adjust(Duration.seconds(59))
      assert.isUndefined(fiber.pollUnsafe())
      yield* TestClock.adjust(Duration.seconds(16))
      const exit = yield* Fiber.await(fiber)
      assert.isTrue(Exit.isFailure(exit))
    }))

  it.effect("does not count quiet time: work arriving after a minute of none has the whole stallAfter", () =>
    Effect.gen(function*() {
      // Before (stop 25's outside attack), work arriving just before the first look past stallAfter
      // failed a healthy pipeline at once: only such a look cleared the quiet time.
      const { fiber } = yield* watching(59_900)
      yield* TestClock.adjust(Duration.seconds(61))
      assert.isUndefined(fiber.pollUnsafe(), "a pipeline failed for work it had had 0.1 s")
      yield* TestClock.adjust(Duration.seconds(30))
      assert.isUndefined(fiber.pollUnsafe())
      // still no progress at it a whole stallAfter after it came: a real stall
      yield* TestClock.adjust(Duration.seconds(45))
      assert.isTrue(Exit.isFailure(yield* Fiber.await(fiber)))
    }))

  it.effect("a pipeline that moves is never failed", () =>
    Effect.gen(function*() {
      const { fiber, progress } = yield* watching(0)
      for (let i = 0; i < 20; i++) {
        yield* TestClock.adjust(Duration.seconds(20))
        progress.committed = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
      }
      assert.isUndefined(fiber.pollUnsafe())
      yield* Fiber.interrupt(fiber)
    }))
})
