import { assert, describe, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Fiber, Random } from "effect"
import { TestClock } from "effect/testing"
import * as Actor from "../../../actors/runtime/Actor.ts"
import * as Supervisor from "../../../actors/runtime/Supervisor.ts"
import { add, block, counterBehavior, fail, get, makeProbe, settle } from "../../fixtures/counterActor.ts"
import type { CounterMsg } from "../../fixtures/counterActor.ts"

const policy = (overrides: Partial<Supervisor.SupervisionPolicy> = {}): Supervisor.SupervisionPolicy => ({
  backoff: { initial: "1 second", max: "1 minute", jitter: 0 },
  maxRestarts: 3,
  within: "1 minute",
  ...overrides
})

const failing = (reply: Deferred.Deferred<number>): CounterMsg => fail(reply)

describe("SupervisionPolicy", () => {
  it.effect("backs off exponentially up to the cap", () =>
    Effect.gen(function*() {
      const p = policy({ backoff: { initial: "100 millis", max: "1 second", jitter: 0 } })
      const delays = yield* Effect.forEach([0, 1, 2, 3, 4, 5], (n) => Supervisor.backoffDelay(p, n))
      assert.deepStrictEqual(delays.map(Duration.toMillis), [100, 200, 400, 800, 1000, 1000])
    }))

  it.effect("jitters the delay within ±jitter", () =>
    Effect.gen(function*() {
      const p = policy({ backoff: { initial: "1 second", max: "1 minute", jitter: 0.5 } })
      const delays = yield* Effect.forEach(Array.from({ length: 50 }), () => Supervisor.backoffDelay(p, 0)).pipe(
        Random.withSeed("jitter")
      )
      const millis = delays.map(Duration.toMillis)
      assert.isTrue(millis.every((d) => d >= 500 && d <= 1500))
      assert.isAbove(new Set(millis).size, 10)
    }))

  it.effect("escalates only when more than maxRestarts fall inside the window", () =>
    Effect.gen(function*() {
      const p = policy({ maxRestarts: 2, within: "10 seconds" })
      const first = yield* Supervisor.decide(p, [1_000, 2_000], 5_000)
      assert.strictEqual(first._tag, "Escalate")
      const later = yield* Supervisor.decide(p, [1_000, 2_000], 11_500) // 1 000 left the window
      assert.strictEqual(later._tag, "Restart")
      assert.deepStrictEqual(later._tag === "Restart" ? later.history : [], [2_000, 11_500])
    }))
})

describe("Actor supervision", () => {
  it.effect("restarts after the backoff with fresh state, answers the failed ask, keeps the rest of the mailbox", () =>
    Effect.gen(function*() {
      const probe = makeProbe()
      const ref = yield* Actor.make({
        kind: "test-supervision",
        id: "s1",
        behavior: counterBehavior(probe),
        mailboxCapacity: 8,
        supervision: policy()
      })
      yield* ref.tell(add(5))
      assert.strictEqual(yield* ref.ask(get), 5)
      const gate = yield* block(ref.tell) // hold the actor so the mailbox order is known
      const failed = yield* Effect.forkChild(ref.ask(failing))
      yield* settle
      yield* ref.tell(add(7)) // queued behind the failing message: must survive the restart
      yield* Deferred.succeed(gate, undefined)
      const error = yield* Effect.flip(Fiber.join(failed))
      assert.strictEqual(error._tag, "ActorFailed")
      assert.strictEqual(error._tag === "ActorFailed" ? (error.cause as { _tag: string })._tag : "", "Boom")
      const after = yield* Effect.forkChild(ref.ask(get, { timeout: "1 minute" }))
      yield* TestClock.adjust("999 millis")
      assert.isUndefined(after.pollUnsafe(), "no restart before the backoff has passed")
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(yield* Fiber.join(after), 7, "state re-initialised by setup, queued message kept")
      assert.deepStrictEqual(probe.events.filter((e) => !e.startsWith("add")), ["setup:s1", "stop:s1", "setup:s1"])
    }))

  it.effect("doubles the backoff for each restart inside the window", () =>
    Effect.gen(function*() {
      const probe = makeProbe()
      const ref = yield* Actor.make({
        kind: "test-supervision",
        id: "s2",
        behavior: counterBehavior(probe),
        mailboxCapacity: 8,
        supervision: policy({ maxRestarts: 10 })
      })
      yield* ref.tell({ _tag: "Die" })
      yield* TestClock.adjust("1 second") // first restart after 1 s
      yield* ref.tell({ _tag: "Die" })
      const after = yield* Effect.forkChild(ref.ask(get, { timeout: "1 minute" }))
      yield* TestClock.adjust("1999 millis")
      assert.isUndefined(after.pollUnsafe(), "second restart waits 2 s")
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(yield* Fiber.join(after), 0)
      assert.strictEqual(probe.events.filter((e) => e.startsWith("setup")).length, 3)
    }))

  it.effect("gives up after maxRestarts in the window: escalates to the parent, pending and later messages get ActorStopped", () =>
    Effect.gen(function*() {
      const parent = yield* Supervisor.escalationSignal
      const parentFiber = yield* Effect.forkChild(parent.failed)
      const ref = yield* Actor.make({
        kind: "test-supervision",
        id: "s3",
        behavior: counterBehavior(makeProbe()),
        mailboxCapacity: 8,
        supervision: policy({ maxRestarts: 2 }),
        onEscalate: parent.escalate
      })
      yield* ref.tell(fail())
      yield* TestClock.adjust("1 second")
      yield* ref.tell(fail())
      yield* settle // the actor is now in its 2 s backoff
      yield* ref.tell(fail()) // the third failure exceeds maxRestarts
      const pending = yield* Effect.forkChild(ref.ask(get, { timeout: "1 minute" }))
      yield* settle
      assert.isUndefined(parentFiber.pollUnsafe())
      yield* TestClock.adjust("2 seconds")
      const escalation = yield* Effect.flip(Fiber.join(parentFiber))
      assert.strictEqual(escalation._tag, "ActorEscalated")
      assert.deepInclude(escalation, { kind: "test-supervision", actor: "s3", restarts: 2 })
      assert.strictEqual((yield* Effect.flip(Fiber.join(pending)))._tag, "ActorStopped")
      assert.strictEqual((yield* Effect.flip(ref.tell(add(1))))._tag, "ActorStopped")
    }))

  it.effect("keeps restarting when failures are spread wider than the window", () =>
    Effect.gen(function*() {
      const parent = yield* Supervisor.escalationSignal
      const parentFiber = yield* Effect.forkChild(parent.failed)
      const ref = yield* Actor.make({
        kind: "test-supervision",
        id: "s4",
        behavior: counterBehavior(makeProbe()),
        mailboxCapacity: 8,
        supervision: policy({ maxRestarts: 1, within: "5 seconds" }),
        onEscalate: parent.escalate
      })
      for (let i = 0; i < 5; i++) {
        yield* Effect.flip(ref.ask(failing))
        yield* TestClock.adjust("6 seconds")
      }
      yield* ref.tell(add(3))
      assert.strictEqual(yield* ref.ask(get), 3)
      assert.isUndefined(parentFiber.pollUnsafe())
    }))
})
