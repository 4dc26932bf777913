import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Scope } from "effect"
import * as ActorRegistry from "../../../actors/runtime/ActorRegistry.ts"
import * as Dispatcher from "../../../actors/runtime/Dispatcher.ts"
import { add, block, counterBehavior, get, makeProbe, settle } from "../../fixtures/counterActor.ts"
import type { CounterMsg } from "../../fixtures/counterActor.ts"

const setup = Effect.gen(function*() {
  const probe = makeProbe()
  const registry = yield* ActorRegistry.make({ kind: "test-dispatch", behavior: () => counterBehavior(probe), mailboxCapacity: 1, idleTimeout: "1 minute" })
  const returned: Array<CounterMsg> = []
  const dispatcherScope = yield* Scope.make()
  const dispatcher = yield* Dispatcher.make(registry, { onStopped: (msg) => Effect.sync(() => void returned.push(msg)) }).pipe(Scope.provide(dispatcherScope))
  return { probe, registry, dispatcher, returned, dispatcherScope }
})

const adds = (probe: ReturnType<typeof makeProbe>, id: string) => probe.events.filter((e) => e.startsWith(`add:${id}:`))

describe("Dispatcher", () => {
  it.effect("lets other keys through while one key's mailbox is full, and keeps each key's order", () =>
    Effect.gen(function*() {
      const { probe, registry, dispatcher } = yield* setup
      const gate = yield* block((msg) => registry.tell("a", msg)) // a is stuck handling
      for (const n of [1, 2, 3]) yield* dispatcher.dispatch("a", add(n)) // 1 fills the mailbox, 2 and 3 wait
      yield* dispatcher.dispatch("b", add(10))
      assert.strictEqual(yield* registry.ask("b", get), 10, "b was not held up by a")
      assert.deepStrictEqual(adds(probe, "a"), [])
      yield* dispatcher.dispatch("a", add(4)) // behind the waiting ones
      yield* Deferred.succeed(gate, undefined)
      yield* settle
      assert.deepStrictEqual(adds(probe, "a"), ["add:a:1", "add:a:2", "add:a:3", "add:a:4"])
    }))

  it.effect("gives the messages still waiting back when it stops", () =>
    Effect.gen(function*() {
      const { registry, dispatcher, returned, dispatcherScope } = yield* setup
      const gate = yield* block((msg) => registry.tell("a", msg))
      for (const n of [1, 2, 3]) yield* dispatcher.dispatch("a", add(n))
      yield* settle
      yield* Scope.close(dispatcherScope, Exit.void)
      assert.deepStrictEqual(returned, [add(2), add(3)])
      yield* Deferred.succeed(gate, undefined)
    }))
})
