import { assert, describe, it } from "@effect/vitest"
import { join } from "node:path"
import { Deferred, Effect, Layer, Option } from "effect"
import * as ActorRegistry from "../../../actors/runtime/ActorRegistry.ts"
import { entityBehavior, type EntityMessage } from "../../../actors/entity/EntityActor.ts"
import { childrenStream, isChildrenStream } from "../../../domain/children.ts"
import type { CommandReply } from "../../../domain/CommandBus.ts"
import type { RecordCommand } from "../../../domain/entities/record.ts"
import { toEnvelope } from "../../../domain/envelope.ts"
import { EventStore, type StreamAppend } from "../../../domain/EventStore.ts"
import { layerSqlite } from "../../../infra/eventstore/sqlite.ts"
import { tempDir } from "../../fixtures/tempDir.ts"

const sqlite = Layer.unwrap(Effect.map(tempDir("parents"), (dir) => layerSqlite({ path: join(dir, "events.db") })))

/**
 * The real store, except that `meanwhile` runs once, just before the first append that `when`
 * matches: another shard's commit landing between an actor's reads and its append, the window in
 * which a check at the HTTP edge (or a read by the actor alone) goes stale.
 */
const storeWith = (when: (appends: ReadonlyArray<StreamAppend>) => boolean, meanwhile: () => Effect.Effect<unknown, unknown>) =>
  Layer.effect(EventStore, Effect.gen(function*() {
    const real = yield* EventStore
    let fired = false
    const first = (appends: ReadonlyArray<StreamAppend>) =>
      Effect.suspend(() => {
        if (fired || !when(appends)) return Effect.void
        fired = true
        return Effect.orDie(Effect.asVoid(meanwhile()))
      })
    return EventStore.of({
      ...real,
      appendToStream: (stream, events, expected) =>
        Effect.andThen(first([{ stream, events, expectedRevision: expected }]), real.appendToStream(stream, events, expected)),
      appendToStreams: (appends) => Effect.andThen(first(appends), real.appendToStreams(appends))
    })
  })).pipe(Layer.provide(sqlite))

const registry = ActorRegistry.make({ kind: "entity-test", behavior: entityBehavior, mailboxCapacity: 16, idleTimeout: "1 minute" })
type Actors = ActorRegistry.ActorRegistry<EntityMessage>

let n = 0
const ask = (actors: Actors, type: string, id: string, action: RecordCommand) =>
  actors.ask<CommandReply, never>(`${type}-${id}`, (reply) => ({
    command: { commandId: `cmd-${++n}`, correlationId: "trace", entityType: type, entityId: id, action },
    reply: (r) => Deferred.succeed(reply, r),
    retryLater: () => Effect.void
  }))

const outcome = (reply: CommandReply) => reply._tag === "Accepted" ? reply.outcome : reply._tag === "Rejected" ? reply.error._tag : reply._tag
const writes = (stream: string, eventType: string) => (appends: ReadonlyArray<StreamAppend>) =>
  appends.some((a) => a.stream === stream && a.events.some((e) => e.type === eventType))

describe("parents and children, decided in the entity actors", () => {
  it.live("a campaign whose advertiser is deleted after the campaign read it is refused (ParentNotFound), not created", () => {
    let actors: Actors | undefined
    // the advertiser is deleted (by its own actor, as another shard would) just before the campaign appends
    const store = storeWith(writes("campaign-1", "EntityCreated"), () => ask(actors!, "advertiser", "1", { _tag: "Delete" }))
    return Effect.gen(function*() {
      actors = yield* registry
      assert.strictEqual(outcome(yield* ask(actors, "advertiser", "1", { _tag: "Put", fields: { name: "A" } })), "created")
      const reply = yield* ask(actors, "campaign", "1", { _tag: "Put", fields: { advertiserId: "1", name: "C" } })
      assert.strictEqual(outcome(reply), "ParentNotFound")
      const events = yield* EventStore
      assert.deepStrictEqual((yield* events.readStream("campaign-1")).length, 0)
      assert.deepStrictEqual((yield* events.readStream("advertiser-1")).map((e) => e.type), ["EntityCreated", "EntityDeleted"])
      assert.deepStrictEqual(yield* events.readStream(childrenStream({ type: "advertiser", id: "1" })), [])
    }).pipe(Effect.provide(store))
  })

  it.live("an advertiser whose deletion read no children, and got one before it appended, is refused (EntityHasChildren)", () => {
    let actors: Actors | undefined
    // a campaign is created under it (by its own actor, as another shard would) just before the deletion appends
    const store = storeWith(
      writes("advertiser-2", "EntityDeleted"),
      () => ask(actors!, "campaign", "2", { _tag: "Put", fields: { advertiserId: "2", name: "C" } })
    )
    return Effect.gen(function*() {
      actors = yield* registry
      assert.strictEqual(outcome(yield* ask(actors, "advertiser", "2", { _tag: "Put", fields: { name: "A" } })), "created")
      const reply = yield* ask(actors, "advertiser", "2", { _tag: "Delete" })
      assert.strictEqual(outcome(reply), "EntityHasChildren")
      assert.deepStrictEqual(reply._tag === "Rejected" && reply.error._tag === "EntityHasChildren" ? reply.error.examples : [], [{ type: "campaign", id: "2" }])
      const events = yield* EventStore
      assert.deepStrictEqual((yield* events.readStream("advertiser-2")).map((e) => e.type), ["EntityCreated"])
      assert.deepStrictEqual((yield* events.readStream("campaign-2")).map((e) => e.type), ["EntityCreated"])
    }).pipe(Effect.provide(store))
  })

  it.live("keeps the children index: a child deleted or moved leaves its parent free to be deleted", () =>
    Effect.gen(function*() {
      const actors = yield* registry
      for (const id of ["3", "4"]) yield* ask(actors, "advertiser", id, { _tag: "Put", fields: { name: `A${id}` } })
      assert.strictEqual(outcome(yield* ask(actors, "campaign", "3", { _tag: "Put", fields: { advertiserId: "3", name: "C3" } })), "created")
      assert.strictEqual(outcome(yield* ask(actors, "campaign", "4", { _tag: "Put", fields: { advertiserId: "3", name: "C4" } })), "created")
      assert.strictEqual(outcome(yield* ask(actors, "advertiser", "3", { _tag: "Delete" })), "EntityHasChildren")
      // campaign 3 moves to advertiser 4, campaign 4 is deleted: advertiser 3 has none left
      assert.strictEqual(outcome(yield* ask(actors, "campaign", "3", { _tag: "Patch", patch: { advertiserId: "4" } })), "updated")
      assert.strictEqual(outcome(yield* ask(actors, "campaign", "4", { _tag: "Delete" })), "deleted")
      assert.strictEqual(outcome(yield* ask(actors, "advertiser", "3", { _tag: "Delete" })), "deleted")
      assert.strictEqual(outcome(yield* ask(actors, "advertiser", "4", { _tag: "Delete" })), "EntityHasChildren")
      // a campaign cannot move under the deleted one
      assert.strictEqual(outcome(yield* ask(actors, "campaign", "3", { _tag: "Patch", patch: { advertiserId: "3" } })), "ParentNotFound")
      // the index is no entity's history: its events carry no entity envelope (HISTORY and the read models skip them)
      const indexStream = childrenStream({ type: "advertiser", id: "3" })
      assert.isTrue(isChildrenStream(indexStream))
      assert.isFalse(isChildrenStream("advertiser-3"))
      const index = yield* (yield* EventStore).readStream(indexStream)
      assert.isTrue(index.every((e) => Option.isNone(toEnvelope(e))))
      assert.deepStrictEqual(index.map((e) => [e.type, e.data]), [
        ["ChildLinked", { type: "campaign", id: "3" }],
        ["ChildLinked", { type: "campaign", id: "4" }],
        ["ChildUnlinked", { type: "campaign", id: "3" }],
        ["ChildUnlinked", { type: "campaign", id: "4" }]
      ])
    }).pipe(Effect.provide(sqlite)))
})
