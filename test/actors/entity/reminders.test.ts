import { assert, describe, it } from "@effect/vitest"
import { join } from "node:path"
import { Deferred, Effect, Fiber, Layer, Option, Stream } from "effect"
import { TestClock } from "effect/testing"
import { entityBehavior, type EntityMessage } from "../../../actors/entity/EntityActor.ts"
import * as ActorRegistry from "../../../actors/runtime/ActorRegistry.ts"
import type { CommandReply } from "../../../domain/CommandBus.ts"
import { Deciders, makeRegistry } from "../../../domain/DeciderRegistry.ts"
import type { EntityCommand } from "../../../domain/entity.ts"
import { EventStore } from "../../../domain/EventStore.ts"
import { Reminders } from "../../../domain/Reminders.ts"
import { shardOf } from "../../../domain/shards.ts"
import { wakeCommand } from "../../../domain/wake.ts"
import { runReminders } from "../../../actors/runtime/ReminderScheduler.ts"
import { layerSqlite } from "../../../infra/eventstore/sqlite.ts"
import { layerSqlite as remindersSqlite } from "../../../infra/reminders/sqlite.ts"
import { ledger } from "../../fixtures/ledger.ts"
import { tempDir } from "../../fixtures/tempDir.ts"

const SHARDS = 8
/** A real event store and reminder store (SQLite files), fresh for each test. */
const services = () =>
  Layer.unwrap(Effect.map(tempDir("reminders"), (dir) =>
    Layer.mergeAll(
      layerSqlite({ path: join(dir, "events.db") }),
      remindersSqlite({ path: join(dir, "reminders.db") }),
      Layer.succeed(Deciders, makeRegistry([ledger]))
    )))
const actors = ActorRegistry.make({ kind: "wake-test", behavior: (stream: string) => entityBehavior(stream, { shards: SHARDS }), mailboxCapacity: 8, idleTimeout: "1 hour" })

let n = 0
const command = (action: EntityCommand["action"]): EntityCommand => ({ commandId: `c-${++n}`, correlationId: "t", entityType: "ledger", entityId: "acct", action })
const ask = (registry: ActorRegistry.ActorRegistry<EntityMessage>, cmd: EntityCommand) =>
  registry.ask<CommandReply, never>("ledger-acct", (reply) => ({ command: cmd, reply: (r) => Deferred.succeed(reply, r), retryLater: () => Effect.void }))
const shard = shardOf("acct", SHARDS)

describe("entity reminders (wakeAt)", () => {
  it.live("sets the reminder when the state asks to be woken, and a due reminder arrives as a Wake command, applied once", () =>
    Effect.gen(function*() {
      const reminders = yield* Reminders
      yield* Effect.scoped(Effect.gen(function*() {
        const registry = yield* actors
        yield* ask(registry, command({ _tag: "Deposit", amount: 10 }))
        assert.isTrue(Option.isNone(yield* reminders.next([shard])))
        yield* ask(registry, command({ _tag: "Hold", until: 5_000 }))
        const due = yield* reminders.due([shard], 5_000, 10)
        assert.deepStrictEqual(due.map(({ token: _, ...r }) => r), [{ entityType: "ledger", entityId: "acct", shard, dueAt: 5_000 }])

        const wake = wakeCommand(due[0]!)
        assert.deepStrictEqual(wakeCommand(due[0]!).commandId, wake.commandId) // the same reminder is the same command
        const woken = yield* ask(registry, wake)
        assert.deepStrictEqual(woken._tag === "Accepted" ? woken.entity.state : null, { balance: 10, heldUntil: null })
        // released: the reminder is cancelled
        assert.isTrue(Option.isNone(yield* reminders.next([shard])))
        // fired again (a crash before `fired`): answered from the first time, nothing appended
        assert.deepStrictEqual(yield* ask(registry, wake), woken)
        const events = yield* (yield* EventStore).readStream("ledger-acct")
        assert.deepStrictEqual(events.map((e) => e.type), ["Deposited", "HoldPlaced", "HoldReleased"])
      }))
    }).pipe(Effect.provide(services())))

  it.live("on activation, sets again a reminder the state asks for (a crash between commit and reminder)", () =>
    Effect.gen(function*() {
      const reminders = yield* Reminders
      yield* Effect.scoped(Effect.flatMap(actors, (registry) => ask(registry, command({ _tag: "Hold", until: 9_000 }))))
      yield* reminders.cancel("ledger", "acct")
      yield* Effect.scoped(Effect.flatMap(actors, (registry) => ask(registry, command({ _tag: "Deposit", amount: 1 }))))
      assert.deepStrictEqual(yield* reminders.next([shard]), Option.some(9_000))
    }).pipe(Effect.provide(services())))

  it.effect("a hold's reminder, fired by the scheduler at its instant (TestClock), wakes the entity in its command order", () =>
    Effect.gen(function*() {
      const registry = yield* actors
      const reminders = yield* Reminders
      yield* ask(registry, command({ _tag: "Deposit", amount: 10 }))
      yield* ask(registry, command({ _tag: "Hold", until: 60_000 }))
      const fired: Array<CommandReply> = []
      const firstFired = yield* Deferred.make<void>()
      const scheduler = yield* runReminders({
        shards: Stream.make([shard]),
        fire: (reminder) =>
          Effect.map(ask(registry, wakeCommand(reminder)), (reply) => {
            fired.push(reply)
            Deferred.doneUnsafe(firstFired, Effect.void)
          })
      }).pipe(Effect.forkChild)
      yield* TestClock.adjust("59 seconds")
      assert.deepStrictEqual(fired, [])
      const refused = yield* ask(registry, command({ _tag: "Withdraw", amount: 1 }))
      assert.strictEqual(refused._tag === "Rejected" ? refused.error._tag : refused._tag, "CommandRefused")
      yield* TestClock.adjust("1 second")
      // the wake's append commits on the event store's writer thread, in real time: wait for it, not for a number of yields
      yield* Deferred.await(firstFired)
      assert.deepStrictEqual(fired.map((r) => r._tag === "Accepted" ? r.entity.state : r), [{ balance: 10, heldUntil: null }])
      assert.isTrue(Option.isNone(yield* reminders.next([shard])))
      const withdrawn = yield* ask(registry, command({ _tag: "Withdraw", amount: 1 }))
      assert.strictEqual(withdrawn._tag, "Accepted")
      yield* Fiber.interrupt(scheduler)
    }).pipe(Effect.provide(services())))
})
