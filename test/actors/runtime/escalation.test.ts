/**
 * An actor that gives up, seen from what feeds it: the escalation travels Supervisor → ActorRegistry →
 * the owner of the Dispatcher (as runEntityActors' shard session is), which stops; the message the
 * actor failed on and every one after it are handed back — by the actor (`undelivered`) what was in
 * its mailbox, by the dispatcher (`onStopped`) what still waited in its line — none lost, none handled
 * by a new incarnation ahead of one handed back, and other actors are not affected.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Scope } from "effect"
import * as ActorRegistry from "../../../actors/runtime/ActorRegistry.ts"
import * as Dispatcher from "../../../actors/runtime/Dispatcher.ts"
import * as Supervisor from "../../../actors/runtime/Supervisor.ts"
import { add, block, counterBehavior, fail, makeProbe, settle } from "../../fixtures/counterActor.ts"
import type { CounterMsg } from "../../fixtures/counterActor.ts"

describe("an escalation reaching the dispatcher", () => {
  it.effect("stops the dispatcher's owner with the escalation, and every message for the actor that gave up is handed back once, none lost, none handled", () =>
    Effect.gen(function*() {
      const probe = makeProbe()
      const returned: Array<CounterMsg> = [] // handed back, by the actor or by the dispatcher
      const parent = yield* Supervisor.escalationSignal
      const registry = yield* ActorRegistry.make({
        kind: "test-escalation",
        behavior: () => counterBehavior(probe),
        mailboxCapacity: 1,
        idleTimeout: "1 minute",
        supervision: { backoff: { initial: "1 second", max: "1 second", jitter: 0 }, maxRestarts: 0, within: "1 minute" },
        onEscalate: parent.escalate,
        undelivered: (msg) => Effect.sync(() => void returned.push(msg))
      })
      const sessionScope = yield* Scope.make()
      const dispatcher = yield* Dispatcher.make(registry, { onStopped: (msg) => Effect.sync(() => void returned.push(msg)) }).pipe(Scope.provide(sessionScope))
      // The session: fed by the dispatcher until a child escalates (runEntityActors races the same way).
      const session = yield* Effect.forkChild(Effect.raceFirst(Effect.never, parent.failed))

      const gate = yield* block((msg) => dispatcher.dispatch("a", msg)) // a is busy
      yield* dispatcher.dispatch("a", fail()) // fills a's mailbox: a gives up when it gets to it
      for (const n of [1, 2, 3]) yield* dispatcher.dispatch("a", add(n)) // wait in a's line, behind the failure
      yield* dispatcher.dispatch("b", add(10))
      yield* Deferred.succeed(gate, undefined)

      const escalation = yield* Effect.flip(Fiber.join(session))
      assert.strictEqual(escalation._tag, "ActorEscalated")
      assert.deepInclude(escalation, { kind: "test-escalation", actor: "a", restarts: 0 })
      // the session ends: its dispatcher stops, handing back what still waits
      yield* Scope.close(sessionScope, Exit.void)
      yield* settle
      yield* registry.shutdown

      const handled = probe.events.filter((e) => e.startsWith("add:a:")).map((e) => Number(e.split(":")[2]))
      const handedBack = returned.map((msg) => msg._tag === "Add" ? msg.n : msg._tag)
      const seen = `handled ${JSON.stringify(handled)}, handed back ${JSON.stringify(handedBack)}`
      assert.deepStrictEqual(handled, [], `nothing after the failure was handled by the actor that gave up, nor by a new one before the session stopped: ${seen}`)
      // the bus takes them all again in its own order: the order they are handed back in does not matter
      assert.sameMembers(handedBack, ["Fail", 1, 2, 3], `every one handed back, the one it failed on too: ${seen}`)
      assert.strictEqual(handedBack.length, 4, `each once: ${seen}`)
      assert.include(probe.events, "add:b:10", "b was not affected")
    }))
})
