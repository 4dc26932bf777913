import { join } from "node:path"
import { assert, describe, it, layer } from "@effect/vitest"
import { Deferred, Effect, Layer, Option } from "effect"
import * as EntityMemory from "../../../actors/entity/EntityMemory.ts"
import * as ShardBatchApplier from "../../../actors/entity/ShardBatchApplier.ts"
import { CommandBus, type CommandOutcome, type CommandReply } from "../../../domain/CommandBus.ts"
import type { EntityCommand } from "../../../domain/entity.ts"
import { Deciders, makeRegistry } from "../../../domain/DeciderRegistry.ts"
import { userprofile } from "../../../domain/entities/userprofile.ts"
import { EventStore } from "../../../domain/EventStore.ts"
import { profileId } from "../../../domain/ingest/LoaderRecord.ts"
import type { ProfileRecord } from "../../../domain/ingest/profileEvents.ts"
import { Reminders } from "../../../domain/Reminders.ts"
import { shardOf } from "../../../domain/shards.ts"
import { wakeCommand } from "../../../domain/wake.ts"
import { layerSqlite } from "../../../infra/eventstore/sqlite.ts"
import { layerTestPlatform } from "../../fixtures/platform.ts"
import { tempDir } from "../../fixtures/tempDir.ts"

let n = 0
const applyCommand = (id: string, records: ReadonlyArray<ProfileRecord>): EntityCommand => {
  const commandId = `profile-batch-${++n}`
  return { commandId, correlationId: commandId, entityType: "userprofile", entityId: id, action: { _tag: "Apply", records } }
}
const record = (segmentId: string, line: number, over: Partial<ProfileRecord> = {}): ProfileRecord => ({
  segmentId, op: "add", time: "2026-01-01T00:00:00Z", source: { partner: "acme", jobId: "job-1", digest: "d1", line }, ...over
})

/** `count` cookie profile ids of one shard (the default 64 shards). */
const profilesOfShard = (shard: number, count: number, prefix: string) => {
  const ids: Array<string> = []
  for (let i = 0; ids.length < count; i++) {
    const id = profileId("cookie", `${prefix}-${i}`)
    if (shardOf(id, 64) === shard) ids.push(id)
  }
  return ids
}

const revision = (reply: CommandReply) => reply._tag === "Accepted" ? reply.entity.revision : reply._tag
const segmentsOf = (reply: CommandReply) =>
  reply._tag === "Accepted" ? (reply.entity.state as { segments: ReadonlyArray<{ segmentId: string }> } | null)?.segments.map((s) => s.segmentId) : reply._tag

layer(layerTestPlatform(), { excludeTestServices: true, timeout: 60_000 })("user profiles applied in shard batches", (it) => {
  it.effect("applies a bus batch of many new profiles in one multi-stream append, answering each command", () =>
    Effect.gen(function*() {
      const bus = yield* CommandBus
      const store = yield* EventStore
      const ids = profilesOfShard(5, 500, "many")
      const replies = yield* bus.sendBatch(ids.map((id, i) => applyCommand(id, [record(String(i), i + 1)])))
      assert.isTrue(replies.every((r) => r._tag === "Accepted" && r.outcome === "created"), JSON.stringify(replies.find((r) => r._tag !== "Accepted")))
      assert.deepStrictEqual(replies.map((r) => r._tag === "Accepted" ? r.entity.id : ""), ids)
      assert.deepStrictEqual(segmentsOf(replies[7]!), ["7"])
      const first = yield* Effect.forEach(ids, (id) => Effect.map(store.readStream(`userprofile-${id}`), (events) => events))
      assert.isTrue(first.every((events) => events.length === 1 && events[0]!.type === "SegmentsAdded"))
      // one commit: one commit time, consecutive global positions; the reply's time is the recorded one
      assert.strictEqual(new Set(first.map((e) => e[0]!.recordedAt)).size, 1)
      const positions = first.map((e) => e[0]!.position).sort((a, b) => a - b)
      assert.strictEqual(positions.at(-1)! - positions[0]!, ids.length - 1)
      assert.strictEqual(replies[0]!._tag === "Accepted" ? replies[0]!.entity.updatedAt : null, first[0]![0]!.recordedAt)
    }))

  it.effect("a command whose decided events do not encode is refused alone; the rest of its batch applies (an expiry in year −1 failed the whole batch at every retry)", () =>
    Effect.gen(function*() {
      const bus = yield* CommandBus
      const [bad, good] = profilesOfShard(9, 2, "year-minus-one")
      const replies = yield* bus.sendBatch([
        applyCommand(bad!, [record("1", 1, { time: "0000-01-01T00:00:00+23:59", ttlSeconds: 60 })]),
        applyCommand(good!, [record("2", 2)])
      ])
      assert.strictEqual(replies[0]!._tag, "Rejected", JSON.stringify(replies[0]))
      const error = replies[0]!._tag === "Rejected" ? replies[0]!.error : undefined
      assert.strictEqual(error?._tag, "CommandRefused")
      assert.match(error?._tag === "CommandRefused" ? error.reason : "", /^the events it decided do not encode: .*expiresAt/s)
      assert.deepStrictEqual(segmentsOf(replies[1]!), ["2"])
    }))

  it.effect("a command larger than a message on the bus carries is refused (CommandTooLarge), never published; the rest of its batch applies", () =>
    Effect.gen(function*() {
      const bus = yield* CommandBus
      const [big, small] = profilesOfShard(11, 2, "too-large")
      // ~9 MB: over nats.conf's 8 MB max_payload
      const records = Array.from({ length: 60_000 }, (_, i) => record(String(i), i + 1, { source: { partner: "acme", jobId: "job-1", digest: "d".repeat(64), line: i + 1 } }))
      const replies = yield* bus.sendBatchOutcomes([applyCommand(big!, records), applyCommand(small!, [record("3", 1)])])
      assert.deepStrictEqual(replies.map((r) => r._tag === "Rejected" ? r.error._tag : r._tag), ["CommandTooLarge", "Accepted"])
      const alone = yield* bus.send(applyCommand(big!, records))
      assert.strictEqual(alone._tag === "Rejected" ? alone.error._tag : alone._tag, "CommandTooLarge")
    }))

  it.effect("a redelivered batch is answered the same and applied once; two commands of one profile in a batch apply in order", () =>
    Effect.gen(function*() {
      const bus = yield* CommandBus
      const store = yield* EventStore
      const [a, b] = profilesOfShard(9, 2, "redeliver")
      const commands = [
        applyCommand(a!, [record("1", 1)]),
        applyCommand(b!, [record("1", 2)]),
        applyCommand(a!, [record("2", 3)]),
        { ...applyCommand(b!, [record("1", 4)]), action: { _tag: "Apply", records: [] } } // invalid: at least one record
      ]
      const replies = yield* bus.sendBatch(commands)
      assert.deepStrictEqual(replies.map(revision), [0, 0, 1, "Rejected"])
      assert.deepStrictEqual(segmentsOf(replies[0]!), ["1"]) // the entity as its own command left it
      assert.deepStrictEqual(segmentsOf(replies[2]!), ["1", "2"])
      const again = yield* bus.sendBatch(commands)
      assert.deepStrictEqual(again, replies)
      assert.strictEqual((yield* store.readStream(`userprofile-${a}`)).length, 2)
      assert.strictEqual((yield* store.readStream(`userprofile-${b}`)).length, 1)
      // the same lines in a new command (a file uploaded again, same digest): unchanged, nothing appended
      const same = yield* bus.sendBatch([applyCommand(a!, [record("1", 1), record("2", 3)])])
      assert.strictEqual(same[0]!._tag === "Accepted" ? same[0]!.outcome : same[0]!._tag, "unchanged")
      assert.strictEqual((yield* store.readStream(`userprofile-${a}`)).length, 2)
    }))

  it.effect("one command id on two profiles of one batch is two commands: each applied, each answered (command ids are each entity's own)", () =>
    Effect.gen(function*() {
      // Before (the re-attack of stop 26), the batch kept one set of command ids for every entity: two long
      // profile ids named alike in command ids (commandIdRef) failed the batch until a retry split them.
      const bus = yield* CommandBus
      const store = yield* EventStore
      const [a, b] = profilesOfShard(13, 2, "same-id")
      const commandId = "profile-batch-shared-id"
      const one = (id: string, segment: string) => ({ commandId, correlationId: commandId, entityType: "userprofile", entityId: id, action: { _tag: "Apply", records: [record(segment, 1)] } })
      const outcomes = yield* bus.sendBatchOutcomes([one(a!, "1"), one(b!, "2")])
      assert.deepStrictEqual(outcomes.map((o) => o._tag === "Accepted" ? o.outcome : o._tag), ["created", "created"])
      assert.strictEqual((yield* store.readStream(`userprofile-${a}`)).length, 1)
      assert.strictEqual((yield* store.readStream(`userprofile-${b}`)).length, 1)
    }))

  it.effect("a Wake sent between two batches is applied between them, in bus order, and sets and clears the reminder", () =>
    Effect.gen(function*() {
      const bus = yield* CommandBus
      const store = yield* EventStore
      const reminders = yield* Reminders
      const [id] = profilesOfShard(11, 1, "wake")
      const shard = shardOf(id!, 64)
      const due = Date.parse("2026-01-01T00:01:00Z")
      const added = yield* bus.sendBatch([applyCommand(id!, [record("5", 1, { ttlSeconds: 60 })])])
      assert.strictEqual(added[0]!._tag, "Accepted")
      assert.isTrue(Option.isSome(yield* reminders.next([shard])))
      const set = yield* reminders.due([shard], due, 10)
      assert.deepStrictEqual(set.filter((r) => r.entityId === id).map(({ token: _, ...r }) => r), [{ entityType: "userprofile", entityId: id!, shard, dueAt: due }])
      const woken = yield* bus.send(wakeCommand(set.find((r) => r.entityId === id)!))
      assert.deepStrictEqual(segmentsOf(woken), [])
      // the reminder is cleared: nothing else is due for this profile
      assert.deepStrictEqual((yield* reminders.due([shard], Number.MAX_SAFE_INTEGER, 100)).filter((r) => r.entityId === id), [])
      // a newer add after the expiry renews it
      const renewed = yield* bus.sendBatch([applyCommand(id!, [record("5", 1, { ttlSeconds: 60, time: "2026-01-01T00:02:00Z", source: { partner: "acme", jobId: "job-2", digest: "d2", line: 1 } })])])
      assert.deepStrictEqual(segmentsOf(renewed[0]!), ["5"])
      const types = (yield* store.readStream(`userprofile-${id}`)).map((e) => e.type)
      assert.deepStrictEqual(types, ["SegmentsAdded", "SegmentsExpired", "SegmentsAdded"])
    }))
})

/** The applier alone on a real SQLite store, its commands handed in as a shard session would. */
const storeOnly = () =>
  Layer.unwrap(Effect.map(tempDir("applier"), (dir) => Layer.mergeAll(layerSqlite({ path: join(dir, "events.db") }), Layer.succeed(Deciders, makeRegistry([userprofile])))))
const ask = (applier: ShardBatchApplier.ShardBatchApplier, commands: ReadonlyArray<EntityCommand>) =>
  Effect.gen(function*() {
    const replies = commands.map(() => Deferred.makeUnsafe<CommandReply>())
    yield* applier.apply(commands.map((command, i) => ({ command, reply: (r) => Deferred.succeed(replies[i]!, r).pipe(Effect.asVoid), retryLater: () => Effect.void })))
    return yield* Effect.forEach(replies, Deferred.await)
  })

describe("ShardBatchApplier on its own", () => {
  it.live("a new applier reads a long history at once (evolveMany), not event by event: a restart's first read of a big profile failed the process", () => {
    let evolved = 0
    const counting = { ...userprofile, evolve: (state: Parameters<typeof userprofile.evolve>[0], event: Parameters<typeof userprofile.evolve>[1]) => (evolved++, userprofile.evolve(state, event)) }
    const layer = Layer.unwrap(Effect.map(tempDir("applier"), (dir) => Layer.mergeAll(layerSqlite({ path: join(dir, "events.db") }), Layer.succeed(Deciders, makeRegistry([counting])))))
    return Effect.gen(function*() {
      const id = profileId("cookie", "long-history")
      yield* Effect.scoped(Effect.flatMap(ShardBatchApplier.make({ shards: 64 }), (applier) =>
        Effect.forEach(Array.from({ length: 300 }, (_, i) => i), (i) => ask(applier, [applyCommand(id, [record(String(i), i + 1)])]), { discard: true })))
      evolved = 0
      const [reply] = yield* Effect.scoped(Effect.flatMap(ShardBatchApplier.make({ shards: 64 }), (applier) => ask(applier, [applyCommand(id, [record("300", 301)])])))
      assert.strictEqual(revision(reply!), 300)
      assert.strictEqual(segmentsOf(reply!)?.length, 301)
      assert.isAtMost(evolved, 10, "the 300 stored events folded at once, the new one decided and applied")
    }).pipe(Effect.provide(layer))
  })

  it.live("answers a sender that reads outcomes alone without building an entity; the others with it", () => {
    let shown = 0
    const counting = { ...userprofile, toJson: (state: Parameters<typeof userprofile.toJson>[0]) => (shown++, userprofile.toJson(state)) }
    const layer = Layer.unwrap(Effect.map(tempDir("applier"), (dir) => Layer.mergeAll(layerSqlite({ path: join(dir, "events.db") }), Layer.succeed(Deciders, makeRegistry([counting])))))
    return Effect.gen(function*() {
      const applier = yield* ShardBatchApplier.make({ shards: 64 })
      const ids = profilesOfShard(3, 50, "outcomes")
      const outcomes = ids.map(() => Deferred.makeUnsafe<CommandOutcome>())
      const commands = ids.map((id, i) => applyCommand(id, [record(String(i), i + 1)]))
      const incoming = (sent: ReadonlyArray<EntityCommand>) => sent.map((command, i) => ({
        command,
        reply: () => Effect.die("a full reply to an outcomes sender"),
        replyOutcome: (o: CommandOutcome) => Deferred.succeed(outcomes[i]!, o).pipe(Effect.asVoid),
        retryLater: () => Effect.void
      }))
      yield* applier.apply(incoming(commands))
      assert.deepStrictEqual(yield* Effect.forEach(outcomes, Deferred.await), ids.map((): CommandOutcome => ({ _tag: "Accepted", outcome: "created" })))
      assert.strictEqual(shown, 0, "no entity built for its answers")
      // a sender that reads the entity back gets it
      const [full] = yield* ask(applier, [applyCommand(ids[0]!, [record("99", 99)])])
      assert.deepStrictEqual(segmentsOf(full!), ["0", "99"])
      assert.isAbove(shown, 0)
    }).pipe(Effect.scoped, Effect.provide(layer))
  })

  it.live("decides again on a stream another writer moved since it was cached (a conflict), keeping both writes", () =>
    Effect.gen(function*() {
      const store = yield* EventStore
      const applier = yield* ShardBatchApplier.make({ shards: 64 })
      const [a, b] = [profileId("cookie", "conflict-a"), profileId("cookie", "conflict-b")]
      yield* ask(applier, [applyCommand(a, [record("1", 1)]), applyCommand(b, [record("1", 1)])])
      // another writer (a former shard owner) appends to a behind the applier's cached fold
      const removal = { _tag: "SegmentsRemoved", memberships: [{ partner: "acme", segmentId: "1", time: "2026-01-02T00:00:00Z", source: { partner: "acme", jobId: "j", digest: "other", line: 9 } }] }
      yield* store.appendToStream(`userprofile-${a}`, [{ eventId: "0190f000-0000-7000-8000-000000000001", type: "SegmentsRemoved", data: { memberships: removal.memberships }, metadata: { entityType: "userprofile", entityId: a, commandId: "elsewhere", correlationId: "elsewhere", causationId: "elsewhere" } }], 0)
      // an older add of segment 1 must now change nothing (the removal is newer); segment 2 is new
      const replies = yield* ask(applier, [applyCommand(a, [record("1", 2), record("2", 3)]), applyCommand(b, [record("2", 2)])])
      assert.deepStrictEqual(replies.map(revision), [2, 1])
      assert.deepStrictEqual(segmentsOf(replies[0]!), ["2"])
      assert.deepStrictEqual((yield* store.readStream(`userprofile-${a}`)).map((e) => e.type), ["SegmentsAdded", "SegmentsRemoved", "SegmentsAdded"])
    }).pipe(Effect.provide(storeOnly())))

  it.live("one command id twice for one entity in a batch: the same command is answered as the first was, another is refused (CommandIdReused)", () =>
    Effect.gen(function*() {
      const store = yield* EventStore
      const applier = yield* ShardBatchApplier.make({ shards: 64 })
      const id = profileId("cookie", "twice-in-a-batch")
      const first = applyCommand(id, [record("1", 1)])
      const other = { ...first, action: { _tag: "Apply", records: [record("2", 2)] } }
      // a sender that reads the entity back, and one that reads outcomes alone
      const replies = yield* ask(applier, [first, first, other])
      assert.deepStrictEqual(replies.map(revision), [0, 0, "Rejected"])
      assert.deepStrictEqual(segmentsOf(replies[1]!), ["1"])
      assert.strictEqual(replies[2]!._tag === "Rejected" ? replies[2]!.error._tag : "", "CommandIdReused")
      const next = applyCommand(id, [record("3", 3)])
      const outcomes = [Deferred.makeUnsafe<CommandOutcome>(), Deferred.makeUnsafe<CommandOutcome>()]
      yield* applier.apply([next, { ...next, action: { _tag: "Apply", records: [record("4", 4)] } }].map((command, i) => ({
        command,
        reply: () => Effect.die("a full reply to an outcomes sender"),
        replyOutcome: (o: CommandOutcome) => Deferred.succeed(outcomes[i]!, o).pipe(Effect.asVoid),
        retryLater: () => Effect.void
      })))
      const [applied, reused] = yield* Effect.forEach(outcomes, Deferred.await)
      assert.deepStrictEqual(applied, { _tag: "Accepted", outcome: "updated" })
      assert.strictEqual(reused!._tag === "Rejected" ? reused!.error._tag : reused!._tag, "CommandIdReused")
      assert.deepStrictEqual((yield* store.readStream(`userprofile-${id}`)).length, 2)
    }).pipe(Effect.scoped, Effect.provide(storeOnly())))

  it.live("a new applier (another process after a crash) answers a redelivered command from the stream, applying it once", () =>
    Effect.gen(function*() {
      const store = yield* EventStore
      const id = profileId("cookie", "restart")
      const command = applyCommand(id, [record("1", 1)])
      const first = yield* Effect.scoped(Effect.flatMap(ShardBatchApplier.make({ shards: 64 }), (applier) => ask(applier, [command])))
      const again = yield* Effect.scoped(Effect.flatMap(ShardBatchApplier.make({ shards: 64 }), (applier) => ask(applier, [command])))
      assert.deepStrictEqual(again, first)
      assert.strictEqual((yield* store.readStream(`userprofile-${id}`)).length, 1)
    }).pipe(Effect.provide(storeOnly())))

  it.live("an entity it has not read is checked, not taken to be new: a Wake in a new applier expires what the stream holds", () =>
    Effect.gen(function*() {
      const store = yield* EventStore
      const id = profileId("cookie", "wake-unread")
      yield* Effect.scoped(Effect.flatMap(ShardBatchApplier.make({ shards: 64 }), (applier) => ask(applier, [applyCommand(id, [record("1", 1, { ttlSeconds: 60 })])])))
      const wake = wakeCommand({ entityType: "userprofile", entityId: id, shard: 0, dueAt: Date.parse("2026-01-01T00:01:00Z") })
      const [woken] = yield* Effect.scoped(Effect.flatMap(ShardBatchApplier.make({ shards: 64 }), (applier) => ask(applier, [wake])))
      assert.deepStrictEqual([revision(woken!), segmentsOf(woken!)], [1, []])
      assert.deepStrictEqual((yield* store.readStream(`userprofile-${id}`)).map((e) => e.type), ["SegmentsAdded", "SegmentsExpired"])
    }).pipe(Effect.provide(storeOnly())))

  it.live("forgets folds the memory budget takes back, and reads them again", () =>
    Effect.gen(function*() {
      const memory = EntityMemory.make(1)
      const applier = yield* ShardBatchApplier.make({ shards: 64 }).pipe(Effect.provideService(EntityMemory.EntityMemory, memory))
      const ids = Array.from({ length: 20 }, (_, i) => profileId("cookie", `budget-${i}`))
      yield* ask(applier, ids.map((id, i) => applyCommand(id, [record("1", i + 1)])))
      // a budget of one byte keeps at most the last entity
      assert.isAtMost(yield* memory.bytes, 10_000)
      const replies = yield* ask(applier, ids.map((id, i) => applyCommand(id, [record("2", i + 1)])))
      assert.deepStrictEqual(replies.map(revision), ids.map(() => 1))
      assert.deepStrictEqual(segmentsOf(replies[0]!), ["1", "2"])
    }).pipe(Effect.provide(storeOnly())))
})
