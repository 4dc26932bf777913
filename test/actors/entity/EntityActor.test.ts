import { assert, describe, it } from "@effect/vitest"
import { join } from "node:path"
import { Deferred, Effect, Layer } from "effect"
import * as ActorRegistry from "../../../actors/runtime/ActorRegistry.ts"
import { entityBehavior, type EntityMessage } from "../../../actors/entity/EntityActor.ts"
import type { CommandReply } from "../../../domain/CommandBus.ts"
import type { RecordCommand as EntityAction } from "../../../domain/entities/record.ts"
import type { EntityCommand } from "../../../domain/entity.ts"
import { EventStore } from "../../../domain/EventStore.ts"
import { layerSqlite } from "../../../infra/eventstore/sqlite.ts"
import { tempDir } from "../../fixtures/tempDir.ts"

const store = Layer.unwrap(Effect.map(tempDir("entity-actor"), (dir) => layerSqlite({ path: join(dir, "events.db") })))

const registry = ActorRegistry.make({ kind: "entity-test", behavior: entityBehavior, mailboxCapacity: 16, idleTimeout: "1 minute" })

const advertiser = "advertiser-42"
let n = 0
const command = (action: EntityAction, extra: Partial<EntityCommand> = {}): EntityCommand => ({
  commandId: `cmd-${++n}`,
  correlationId: "trace",
  entityType: "advertiser",
  entityId: "42",
  action,
  ...extra
})

const ask = (actors: ActorRegistry.ActorRegistry<EntityMessage>, cmd: EntityCommand) =>
  actors.ask<CommandReply, never>(advertiser, (reply) => ({ command: cmd, reply: (r) => Deferred.succeed(reply, r), retryLater: () => Effect.void }))

const revisionOf = (reply: CommandReply) => reply._tag === "Accepted" ? reply.entity.revision : -99

describe("EntityActor", () => {
  it.live("decides, appends at the expected revision and answers with what the store recorded", () =>
    Effect.gen(function*() {
      const actors = yield* registry
      const created = yield* ask(actors, command({ _tag: "Put", fields: { name: "Acme" } }))
      assert.strictEqual(created._tag === "Accepted" ? created.outcome : created._tag, "created")
      const patched = yield* ask(actors, command({ _tag: "Patch", patch: { currency: "EUR" } }))
      assert.strictEqual(revisionOf(patched), 1)
      const events = yield* (yield* EventStore).readStream(advertiser)
      assert.deepStrictEqual(events.map((e) => e.type), ["EntityCreated", "EntityUpdated"])
      assert.strictEqual(patched._tag === "Accepted" ? patched.entity.updatedAt : "", events[1]!.recordedAt)
      assert.strictEqual(patched._tag === "Accepted" ? patched.entity.position : 0, events[1]!.position)
      assert.deepStrictEqual(patched._tag === "Accepted" ? patched.entity.state : null, { name: "Acme", currency: "EUR" })
    }).pipe(Effect.provide(store)))

  it.live("answers a repeated command id with the first answer and appends nothing", () =>
    Effect.gen(function*() {
      const actors = yield* registry
      const put = command({ _tag: "Put", fields: { name: "Acme" } })
      const first = yield* ask(actors, put)
      yield* ask(actors, command({ _tag: "Patch", patch: { name: "Acme 2" } }))
      const again = yield* ask(actors, put)
      assert.deepStrictEqual(again, first)
      assert.strictEqual((yield* (yield* EventStore).readStream(advertiser)).length, 2)
    }).pipe(Effect.provide(store)))

  it.live("recognises a command delivered again after a thousand later ones, answering with the entity as it left it", () =>
    Effect.gen(function*() {
      const actors = yield* registry
      const put = command({ _tag: "Put", fields: { name: "Acme" } })
      const first = yield* ask(actors, put)
      for (let i = 0; i < 1_000; i++) yield* ask(actors, command({ _tag: "Patch", patch: { name: `Acme ${i}` } }))
      const again = yield* ask(actors, put)
      assert.deepStrictEqual(again, first)
      assert.strictEqual((yield* (yield* EventStore).readStream(advertiser)).length, 1_001)
    }).pipe(Effect.provide(store)))

  it.live("answers a retried rejection with the same rejection, even once the command would succeed", () =>
    Effect.gen(function*() {
      const actors = yield* registry
      yield* ask(actors, command({ _tag: "Put", fields: { name: "Acme" } }))
      const conditional = command({ _tag: "Patch", patch: { name: "B" } }, { expectedRevision: 1 })
      const rejected = yield* ask(actors, conditional)
      assert.strictEqual(rejected._tag, "Rejected")
      yield* ask(actors, command({ _tag: "Patch", patch: { name: "C" } })) // now at revision 1
      assert.deepStrictEqual(yield* ask(actors, conditional), rejected)
    }).pipe(Effect.provide(store)))

  it.live("answers Failed rather than staying silent when handling a command fails", () =>
    Effect.gen(function*() {
      const actors = yield* registry
      yield* ask(actors, command({ _tag: "Put", fields: { name: "Acme" } }))
      // An event this code does not know lands behind the actor's back: folding it is a defect.
      yield* (yield* EventStore).appendToStream(advertiser, [{
        eventId: "01900000-0000-7000-8000-000000000002",
        type: "EntityRenamedInTheFuture",
        data: {},
        metadata: {}
      }], 0)
      const reply = yield* ask(actors, command({ _tag: "Patch", patch: { name: "B" } }))
      assert.strictEqual(reply._tag, "Failed")
    }).pipe(Effect.provide(store)))

  it.live("re-reads and decides again when another writer appended first", () =>
    Effect.gen(function*() {
      const actors = yield* registry
      yield* ask(actors, command({ _tag: "Put", fields: { name: "Acme" } }))
      // Another process appends behind the actor's back.
      const events = yield* (yield* EventStore).readStream(advertiser)
      yield* (yield* EventStore).appendToStream(advertiser, [{
        eventId: "01900000-0000-7000-8000-000000000001",
        type: "EntityUpdated",
        data: { changes: { domain: "acme.example" } },
        metadata: { ...(events[0]!.metadata as object), commandId: "elsewhere" }
      }], 0)
      const reply = yield* ask(actors, command({ _tag: "Patch", patch: { currency: "USD" } }))
      assert.strictEqual(revisionOf(reply), 2)
      assert.deepStrictEqual(reply._tag === "Accepted" ? reply.entity.state : null, { name: "Acme", domain: "acme.example", currency: "USD" })
    }).pipe(Effect.provide(store)))

  it.live("rejects a stale If-Match without appending", () =>
    Effect.gen(function*() {
      const actors = yield* registry
      yield* ask(actors, command({ _tag: "Put", fields: { name: "Acme" } }))
      const reply = yield* ask(actors, command({ _tag: "Patch", patch: { name: "B" } }, { expectedRevision: 5 }))
      assert.strictEqual(reply._tag === "Rejected" ? reply.error._tag : reply._tag, "RevisionMismatch")
      assert.strictEqual((yield* (yield* EventStore).readStream(advertiser)).length, 1)
    }).pipe(Effect.provide(store)))

  it.live("a new incarnation loads the history and still knows recent command ids", () =>
    Effect.gen(function*() {
      const put = command({ _tag: "Put", fields: { name: "Acme" } })
      const first = yield* Effect.scoped(Effect.flatMap(registry, (actors) => ask(actors, put)))
      const again = yield* Effect.scoped(Effect.flatMap(registry, (actors) =>
        Effect.zip(ask(actors, put), ask(actors, command({ _tag: "Patch", patch: { name: "B" } })))))
      assert.deepStrictEqual(again[0], first)
      assert.strictEqual(revisionOf(again[1]), 1)
      // the id with another request is refused, the fingerprint coming from the stored metadata
      const reused = yield* Effect.scoped(Effect.flatMap(registry, (actors) => ask(actors, { ...put, action: { _tag: "Delete" } })))
      assert.strictEqual(reused._tag === "Rejected" ? reused.error._tag : reused._tag, "CommandIdReused")
    }).pipe(Effect.provide(store)))
})
