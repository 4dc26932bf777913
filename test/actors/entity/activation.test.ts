import { assert, describe, it } from "@effect/vitest"
import { join } from "node:path"
import { Deferred, Effect, Layer, Schedule } from "effect"
import { entityBehavior, type EntityMessage } from "../../../actors/entity/EntityActor.ts"
import * as ActorRegistry from "../../../actors/runtime/ActorRegistry.ts"
import type { CommandReply } from "../../../domain/CommandBus.ts"
import { Deciders, makeRegistry } from "../../../domain/DeciderRegistry.ts"
import { deciders } from "../../../domain/entities/index.ts"
import type { EntityCommand } from "../../../domain/entity.ts"
import { EventStore, type ReadStreamOptions } from "../../../domain/EventStore.ts"
import { layerSqlite as eventStore } from "../../../infra/eventstore/sqlite.ts"
import { layerSqlite as readModel } from "../../../infra/readmodel/sqlite.ts"
import { layer as projections } from "../../../projections/ProjectionRunner.ts"
import { ProjectionStore } from "../../../projections/ProjectionStore.ts"
import { ledger } from "../../fixtures/ledger.ts"
import { tempDir } from "../../fixtures/tempDir.ts"

/** Every stream read the actors make, with its options and how many events it returned. */
const reads: Array<ReadStreamOptions & { readonly count: number }> = []
const recordingReads = Layer.effect(EventStore, Effect.gen(function*() {
  const store = yield* EventStore
  return EventStore.of({
    ...store,
    readStream: (stream, options) => Effect.tap(store.readStream(stream, options), (events) => Effect.sync(() => void reads.push({ ...options, count: events.length })))
  })
}))

const registryLayer = Layer.succeed(Deciders, makeRegistry([...deciders, ledger]))

/** A real event store, read model (kept snapshot every 5 revisions of a ledger) and projection; the actors see the store through `recordingReads`. */
const platform = Layer.unwrap(Effect.map(tempDir("activation"), (dir) =>
  projections.pipe(
    Layer.provideMerge(readModel({ path: join(dir, "readmodel.db") })),
    Layer.provideMerge(eventStore({ path: join(dir, "events.db") })),
    Layer.provideMerge(registryLayer)
  )))

const RECENT = 8
const actors = ActorRegistry.make({
  kind: "ledger-test",
  behavior: (stream: string) => entityBehavior(stream, { recentCommands: RECENT }),
  mailboxCapacity: 16,
  idleTimeout: "1 minute"
})

let n = 0
const deposit = (amount: number): EntityCommand => ({
  commandId: `deposit-${++n}`,
  correlationId: "trace",
  entityType: "ledger",
  entityId: "acct",
  action: { _tag: "Deposit", amount }
})

const ask = (registry: ActorRegistry.ActorRegistry<EntityMessage>, command: EntityCommand) =>
  registry.ask<CommandReply, never>("ledger-acct", (reply) => ({ command, reply: (r) => Deferred.succeed(reply, r), retryLater: () => Effect.void }))

const caughtUp = Effect.gen(function*() {
  const head = yield* (yield* EventStore).headPosition
  if ((yield* (yield* ProjectionStore).checkpoint("entities")) !== head) return yield* Effect.fail("behind" as const)
}).pipe(Effect.retry(Schedule.spaced("10 millis").pipe(Schedule.upTo({ times: 500 }))))

const balanceOf = (reply: CommandReply) => reply._tag === "Accepted" ? (reply.entity.state as { balance: number }).balance : -1

describe("entity activation", () => {
  it.live("starts from the newest kept snapshot plus the tail, remembers the last commands' ids, and answers an older one from the snapshot before it", () =>
    Effect.gen(function*() {
      const commands = Array.from({ length: 23 }, (_, i) => deposit(i + 1))
      const first = yield* Effect.scoped(Effect.flatMap(actors, (registry) => Effect.forEach(commands, (c) => ask(registry, c))))
      assert.strictEqual(balanceOf(first[22]!), (23 * 24) / 2)
      yield* caughtUp
      // Two more events, which the read model may or may not have applied when the next incarnation starts.
      yield* Effect.scoped(Effect.flatMap(actors, (registry) => Effect.zip(ask(registry, deposit(100)), ask(registry, deposit(200)))))

      reads.length = 0
      yield* Effect.scoped(Effect.gen(function*() {
        const registry = yield* actors
        const next = yield* ask(registry, deposit(1))
        assert.strictEqual(balanceOf(next), (23 * 24) / 2 + 301)
        const activation = [...reads]
        // no fold from revision 0: the forward reads start past a snapshot, and everything read is bounded
        assert.isTrue(activation.filter((r) => r.direction !== "backwards").every((r) => (r.fromRevision ?? 0) > 0), JSON.stringify(activation))
        assert.isAtMost(activation.reduce((sum, r) => sum + r.count, 0), RECENT + 2, JSON.stringify(activation))

        // a redelivery of a command applied before the snapshot, within the last RECENT: answered, not applied
        reads.length = 0
        const redelivered = yield* ask(registry, commands[20]!)
        assert.deepStrictEqual(redelivered, first[20])
        // …from the kept snapshot at revision 19 (every 5), never from revision 0
        assert.isTrue(reads.every((r) => (r.fromRevision ?? 0) >= 20), JSON.stringify(reads))
        assert.strictEqual((yield* (yield* EventStore).readStream("ledger-acct")).length, 26)
      }))
    }).pipe(Effect.provide(recordingReads), Effect.provide(platform)))
})
