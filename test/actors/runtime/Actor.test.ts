import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Scope } from "effect"
import { TestClock } from "effect/testing"
import * as Actor from "../../../actors/runtime/Actor.ts"
import { add, block, counterBehavior, get, makeProbe, settle } from "../../fixtures/counterActor.ts"
import type { CounterMsg } from "../../fixtures/counterActor.ts"

const counter = (capacity: number, probe = makeProbe()) =>
  Actor.make({ kind: "test-actor", id: "c1", behavior: counterBehavior(probe), mailboxCapacity: capacity })

describe("Actor", () => {
  it.effect("handles messages one at a time in mailbox order", () =>
    Effect.gen(function*() {
      const probe = makeProbe()
      const ref = yield* counter(4, probe)
      for (let i = 1; i <= 50; i++) yield* ref.tell(add(i))
      const total = yield* ref.ask(get)
      assert.deepStrictEqual(probe.added, Array.from({ length: 50 }, (_, i) => i + 1))
      assert.strictEqual(total, (50 * 51) / 2)
    }))

  it.effect("tell suspends the sender while the mailbox is full, until the actor takes a message", () =>
    Effect.gen(function*() {
      const ref = yield* counter(2)
      const gate = yield* block(ref.tell) // the actor is busy; the mailbox is empty
      yield* ref.tell(add(1))
      yield* ref.tell(add(2))
      assert.strictEqual(yield* ref.mailboxSize, 2)
      const sender = yield* Effect.forkChild(ref.tell(add(3)))
      yield* settle
      assert.isUndefined(sender.pollUnsafe(), "the sender must wait while the mailbox is full")
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(sender)
      assert.strictEqual(yield* ref.ask(get), 6)
    }))

  it.effect("offer fails at once with MailboxFull when the mailbox is full", () =>
    Effect.gen(function*() {
      const ref = yield* counter(1)
      const gate = yield* block(ref.tell)
      yield* ref.offer(add(1))
      const error = yield* Effect.flip(ref.offer(add(2)))
      assert.strictEqual(error._tag, "MailboxFull")
      assert.deepInclude(error, { actor: "c1", capacity: 1 })
      yield* Deferred.succeed(gate, undefined)
      assert.strictEqual(yield* ref.ask(get), 1)
    }))

  it.effect("ask returns the handler's reply", () =>
    Effect.gen(function*() {
      const ref = yield* counter(8)
      yield* ref.tell(add(40))
      yield* ref.tell(add(2))
      assert.strictEqual(yield* ref.ask(get), 42)
    }))

  it.effect("ask fails with AskTimeout when no reply comes in time", () =>
    Effect.gen(function*() {
      const ref = yield* counter(8)
      const asking = yield* Effect.forkChild(
        ref.ask<number>((reply): CounterMsg => ({ _tag: "Silent", reply }), { timeout: "1 second" })
      )
      yield* TestClock.adjust("999 millis")
      assert.isUndefined(asking.pollUnsafe())
      yield* TestClock.adjust("1 millis")
      const error = yield* Effect.flip(Fiber.join(asking))
      assert.strictEqual(error._tag, "AskTimeout")
      assert.deepInclude(error, { actor: "c1", timeoutMillis: 1000 })
    }))

  it.effect("closing the owning scope drains the mailbox, then runs the behaviour's finalizers", () =>
    Effect.gen(function*() {
      const probe = makeProbe()
      const scope = yield* Scope.make()
      const ref = yield* counter(4, probe).pipe(Scope.provide(scope))
      const gate = yield* block(ref.tell)
      yield* ref.tell(add(1))
      yield* ref.tell(add(2))
      const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
      yield* settle
      assert.isUndefined(closing.pollUnsafe(), "close waits for the mailbox to drain")
      const late = yield* Effect.flip(ref.tell(add(3)))
      assert.strictEqual(late._tag, "ActorStopped")
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(closing)
      assert.deepStrictEqual(probe.events, ["setup:c1", "add:c1:1", "add:c1:2", "stop:c1"])
      const afterwards = yield* Effect.flip(ref.ask(get))
      assert.strictEqual(afterwards._tag, "ActorStopped")
    }))
})
