import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Metric, Scope } from "effect"
import { TestClock } from "effect/testing"
import * as Actor from "../../../actors/runtime/Actor.ts"
import * as ActorMetrics from "../../../actors/runtime/ActorMetrics.ts"
import { add, block, counterBehavior, fail, get, makeProbe, settle } from "../../fixtures/counterActor.ts"

// The metric registry is global, so every assertion is about a change.
const snapshot = (kind: string) => {
  const m = ActorMetrics.forKind(kind)
  return Effect.all({
    depth: Effect.map(Metric.value(m.mailboxDepth), (s) => s.value),
    live: Effect.map(Metric.value(m.liveActors), (s) => s.value),
    processed: Effect.map(Metric.value(m.processed), (s) => s.count),
    timed: Effect.map(Metric.value(m.processingSeconds), (s) => s.count),
    restarts: Effect.map(Metric.value(m.restarts), (s) => s.count)
  })
}

describe("ActorMetrics", () => {
  it.effect("tracks mailbox depth, live actors, messages processed, processing time and restarts per kind", () =>
    Effect.gen(function*() {
      const kind = "test-metrics"
      const before = yield* snapshot(kind)
      const scope = yield* Scope.make()
      const ref = yield* Actor.make({
        kind,
        id: "m1",
        behavior: counterBehavior(makeProbe()),
        mailboxCapacity: 8,
        supervision: { backoff: { initial: "1 second", max: "1 second", jitter: 0 }, maxRestarts: 5, within: "1 minute" }
      }).pipe(Scope.provide(scope))
      assert.strictEqual((yield* snapshot(kind)).live - before.live, 1)

      const gate = yield* block(ref.tell)
      yield* ref.tell(add(1))
      yield* ref.tell(add(2))
      assert.strictEqual((yield* snapshot(kind)).depth - before.depth, 2)
      yield* Deferred.succeed(gate, undefined)
      yield* ref.ask(get)
      yield* settle // the reply is observable before the handler's metrics are recorded
      const handled = yield* snapshot(kind)
      assert.strictEqual(handled.depth - before.depth, 0)
      assert.strictEqual(handled.processed - before.processed, 4)
      assert.strictEqual(handled.timed - before.timed, 4)

      yield* Effect.flip(ref.ask(fail))
      yield* TestClock.adjust("1 second")
      yield* ref.ask(get)
      yield* settle
      assert.strictEqual((yield* snapshot(kind)).restarts - before.restarts, 1)

      yield* Scope.close(scope, Exit.void)
      assert.strictEqual((yield* snapshot(kind)).live - before.live, 0)
    }))

  it.effect("records processing time in seconds from the Clock", () =>
    Effect.gen(function*() {
      const kind = "test-metrics-time"
      const histogram = ActorMetrics.forKind(kind).processingSeconds
      const before = yield* Metric.value(histogram)
      const ref = yield* Actor.make({
        kind,
        id: "m2",
        behavior: counterBehavior(makeProbe()),
        mailboxCapacity: 8
      })
      const gate = yield* block(ref.tell)
      yield* TestClock.adjust("3 seconds")
      yield* Deferred.succeed(gate, undefined)
      yield* ref.ask(get)
      yield* settle
      const after = yield* Metric.value(histogram)
      assert.strictEqual(after.count - before.count, 2)
      assert.closeTo(after.sum - before.sum, 3, 1e-9)
    }))
})
