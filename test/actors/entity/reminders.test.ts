import { assert, describe, it } from "@effect/vitest"
import { join } from "node:path"
import { Deferred, Effect, Layer, Option } from "effect"
import { entityBehavior, type EntityMessage } from "../../../actors/entity/EntityActor.ts"
import * as ActorRegistry from "../../../actors/runtime/ActorRegistry.ts"
import type { CommandReply } from "../../../domain/CommandBus.ts"
import { Deciders, makeRegistry } from "../../../domain/DeciderRegistry.ts"
import type { EntityCommand } from "../../../domain/entity.ts"
import { EventStore } from "../../../domain/EventStore.ts"
import { Reminders } from "../../../domain/Reminders.ts"
import { shardOf } from "../../../domain/shards.ts"
import { wakeCommand } from "../../../domain/wake.ts"
import { layerSqlite } from "../../../infra/eventstore/sqlite.ts"
import { ledger } from "../../fixtures/ledger.ts"
import { layerMemoryReminders } from "../../fixtures/memoryReminders.ts"
import { tempDir } from "../../fixtures/tempDir.ts"

const SHARDS = 8
const store = Layer.unwrap(Effect.map(tempDir("reminders"), (dir) => layerSqlite({ path: join(dir, "events.db") })))
const services = Layer.mergeAll(store, layerMemoryReminders(), Layer.succeed(Deciders, makeRegistry([ledger])))
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
        assert.deepStrictEqual(due, [{ entityType: "ledger", entityId: "acct", shard, dueAt: 5_000 }])

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
    }).pipe(Effect.provide(services)))

  it.live("on activation, sets again a reminder the state asks for (a crash between commit and reminder)", () =>
    Effect.gen(function*() {
      const reminders = yield* Reminders
      yield* Effect.scoped(Effect.flatMap(actors, (registry) => ask(registry, command({ _tag: "Hold", until: 9_000 }))))
      yield* reminders.cancel("ledger", "acct")
      yield* Effect.scoped(Effect.flatMap(actors, (registry) => ask(registry, command({ _tag: "Deposit", amount: 1 }))))
      assert.deepStrictEqual(yield* reminders.next([shard]), Option.some(9_000))
    }).pipe(Effect.provide(services)))
})
