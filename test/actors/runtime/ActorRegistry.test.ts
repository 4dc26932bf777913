import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Scope } from "effect"
import type { Duration } from "effect"
import { TestClock } from "effect/testing"
import * as ActorRegistry from "../../../actors/runtime/ActorRegistry.ts"
import type { ActorEscalated } from "../../../actors/runtime/Supervisor.ts"
import { add, block, counterBehavior, fail, get, makeProbe, settle } from "../../fixtures/counterActor.ts"
import type { Boom, CounterMsg, Probe } from "../../fixtures/counterActor.ts"

type Overrides = Partial<Pick<ActorRegistry.Options<CounterMsg, Boom, never>, "idleTimeout" | "supervision" | "onEscalate" | "maxActors">>

const registry = (probe: Probe, overrides: Overrides = {}) =>
  ActorRegistry.make({
    kind: "test-registry",
    behavior: () => counterBehavior(probe),
    mailboxCapacity: 4,
    idleTimeout: "10 seconds",
    ...overrides
  })

const count = (probe: Probe, prefix: string) => probe.events.filter((e) => e === prefix).length

describe("ActorRegistry", () => {
  it.effect("starts one actor per id on its first message", () =>
    Effect.gen(function*() {
      const probe = makeProbe()
      const actors = yield* registry(probe)
      assert.strictEqual(yield* actors.size, 0)
      yield* actors.tell("a", add(1))
      yield* actors.tell("b", add(10))
      yield* actors.tell("a", add(2))
      assert.strictEqual(yield* actors.ask("a", get), 3)
      assert.strictEqual(yield* actors.ask("b", get), 10)
      assert.strictEqual(yield* actors.size, 2)
      assert.strictEqual(count(probe, "setup:a"), 1)
    }))

  it.effect("passivates an idle actor (finalizers run) and starts a fresh incarnation on the next message", () =>
    Effect.gen(function*() {
      const probe = makeProbe()
      const actors = yield* registry(probe)
      yield* actors.tell("a", add(5))
      assert.strictEqual(yield* actors.ask("a", get), 5)
      yield* TestClock.adjust("9 seconds")
      yield* settle
      assert.strictEqual(yield* actors.size, 1, "not idle long enough yet")
      yield* TestClock.adjust("1 seconds")
      yield* settle
      assert.strictEqual(yield* actors.size, 0)
      assert.strictEqual(count(probe, "stop:a"), 1, "the behaviour's finalizer ran")
      assert.strictEqual(yield* actors.ask("a", get), 0, "a new incarnation starts from setup")
      assert.strictEqual(count(probe, "setup:a"), 2)
    }))

  it.effect("keeps at most maxActors live, passivating the least recently used idle one first", () =>
    Effect.gen(function*() {
      const probe = makeProbe()
      const actors = yield* registry(probe, { maxActors: 2 })
      yield* actors.tell("a", add(1))
      yield* actors.tell("b", add(1))
      yield* actors.tell("a", add(1)) // b is now the least recently used
      yield* settle // both idle: mailboxes empty
      yield* actors.tell("c", add(1))
      yield* settle
      assert.strictEqual(yield* actors.size, 2)
      assert.deepStrictEqual([count(probe, "stop:a"), count(probe, "stop:b")], [0, 1])
      assert.strictEqual(yield* actors.ask("a", get), 2, "a kept its state")
      assert.strictEqual(yield* actors.ask("b", get), 0, "b starts again from setup")
    }))

  it.effect("never evicts an actor busy with a message, even past maxActors", () =>
    Effect.gen(function*() {
      const probe = makeProbe()
      const actors = yield* registry(probe, { maxActors: 1 })
      const gate = yield* block((msg) => actors.tell("a", msg)) // a is handling, its mailbox empty
      yield* actors.tell("b", add(1))
      yield* settle
      assert.strictEqual(count(probe, "stop:a"), 0, "a was busy")
      assert.strictEqual(yield* actors.size, 2)
      yield* Deferred.succeed(gate, undefined)
      yield* settle
      yield* actors.tell("c", add(1)) // now a (least recently used, idle) makes room
      yield* settle
      assert.strictEqual(count(probe, "stop:a"), 1)
    }))

  it.effect("does not passivate while messages keep arriving", () =>
    Effect.gen(function*() {
      const probe = makeProbe()
      const actors = yield* registry(probe)
      for (let i = 0; i < 5; i++) {
        yield* actors.tell("a", add(1))
        yield* TestClock.adjust("9 seconds")
        yield* settle
      }
      assert.strictEqual(yield* actors.ask("a", get), 5)
      assert.strictEqual(count(probe, "setup:a"), 1)
    }))

  it.effect("loses no message and never runs two incarnations when sends race passivation", () =>
    Effect.gen(function*() {
      const probe = makeProbe()
      const actors = yield* registry(probe, { idleTimeout: "1 second" })
      const sent: Array<number> = []
      const steps: Array<Duration.Input> = ["999 millis", "1 second", "1001 millis"]
      for (let i = 0; i < 60; i++) {
        const sender = yield* Effect.forkChild(actors.tell("a", add(i)))
        sent.push(i)
        // Vary which runs first: the idle timer firing, the sender, or the passivation close.
        for (let y = 0; y < i % 4; y++) yield* Effect.yieldNow
        yield* TestClock.adjust(steps[i % 3]!)
        yield* Fiber.join(sender)
        if (i % 5 === 0) yield* settle
      }
      yield* actors.shutdown
      assert.deepStrictEqual(probe.added, sent, "every message handled once, in order")
      assert.strictEqual(probe.maxLive, 1, "never two incarnations of one id at once")
      assert.isAbove(count(probe, "setup:a"), 5, "passivation did happen between the sends")
    }))

  it.effect("a new incarnation waits until the passivated one has finished stopping", () =>
    Effect.gen(function*() {
      const probe = makeProbe()
      probe.stopGate = yield* Deferred.make<void>()
      const actors = yield* registry(probe)
      yield* actors.tell("a", add(1))
      yield* TestClock.adjust("10 seconds")
      yield* settle
      assert.strictEqual(yield* actors.size, 0, "passivated; its finalizer is still running")
      const asking = yield* Effect.forkChild(actors.ask("a", get))
      yield* settle
      assert.isUndefined(asking.pollUnsafe())
      assert.strictEqual(count(probe, "setup:a"), 1, "no second incarnation while the first is stopping")
      yield* Deferred.succeed(probe.stopGate, undefined)
      assert.strictEqual(yield* Fiber.join(asking), 0)
      assert.strictEqual(probe.maxLive, 1)
    }))

  it.effect("escalation removes the actor, informs the registry's parent, and the next message starts afresh", () =>
    Effect.gen(function*() {
      const probe = makeProbe()
      const escalations: Array<ActorEscalated> = []
      const actors = yield* registry(probe, {
        supervision: { backoff: { initial: "1 second", max: "1 second", jitter: 0 }, maxRestarts: 0, within: "1 minute" },
        onEscalate: (e) => Effect.sync(() => escalations.push(e))
      })
      yield* actors.tell("a", add(4))
      const error = yield* Effect.flip(actors.ask("a", fail))
      assert.strictEqual(error._tag, "ActorFailed")
      yield* settle
      assert.strictEqual(escalations.length, 1)
      assert.deepInclude(escalations[0], { kind: "test-registry", actor: "a", restarts: 0 })
      assert.strictEqual(yield* actors.size, 0)
      assert.strictEqual(count(probe, "stop:a"), 1)
      assert.strictEqual(yield* actors.ask("a", get), 0)
      assert.strictEqual(count(probe, "setup:a"), 2)
    }))

  it.effect("shutdown stops accepting, drains every mailbox, then stops every actor", () =>
    Effect.gen(function*() {
      const probe = makeProbe()
      const actors = yield* registry(probe)
      const gate = yield* block((msg) => actors.tell("a", msg))
      yield* actors.tell("a", add(1))
      yield* actors.tell("a", add(2))
      yield* actors.tell("b", add(3))
      const stopping = yield* Effect.forkChild(actors.shutdown)
      yield* settle
      assert.isUndefined(stopping.pollUnsafe(), "shutdown waits for the mailboxes")
      assert.strictEqual((yield* Effect.flip(actors.tell("c", add(9))))._tag, "ActorStopped")
      assert.strictEqual((yield* Effect.flip(actors.tell("a", add(9))))._tag, "ActorStopped")
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(stopping)
      assert.sameMembers(probe.added, [1, 2, 3])
      assert.strictEqual(probe.events.at(-1)?.startsWith("stop:"), true)
      assert.strictEqual(count(probe, "stop:a") + count(probe, "stop:b"), 2)
      assert.strictEqual(yield* actors.size, 0)
    }))

  it.effect("closing the registry's scope shuts its actors down", () =>
    Effect.gen(function*() {
      const probe = makeProbe()
      const scope = yield* Scope.make()
      const actors = yield* registry(probe).pipe(Scope.provide(scope))
      yield* actors.tell("a", add(1))
      yield* actors.tell("b", add(2))
      yield* Scope.close(scope, Exit.void)
      assert.sameMembers(probe.added, [1, 2])
      assert.strictEqual(count(probe, "stop:a") + count(probe, "stop:b"), 2)
      assert.strictEqual((yield* Effect.flip(actors.tell("a", add(1))))._tag, "ActorStopped")
    }))
})
