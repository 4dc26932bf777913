import { assert, describe, it } from "@effect/vitest"
import { join } from "node:path"
import { DatabaseSync } from "node:sqlite"
import { Effect, Layer, Option, Schedule } from "effect"
import { Deciders } from "../../domain/DeciderRegistry.ts"
import { streamName } from "../../domain/envelope.ts"
import { EventStore } from "../../domain/EventStore.ts"
import { layerSqlite as eventStore } from "../../infra/eventstore/sqlite.ts"
import { layerSqlite as readModel } from "../../infra/readmodel/sqlite.ts"
import { getEntity } from "../../projections/EntityQueries.ts"
import { EntityReadModel } from "../../projections/EntityReadModel.ts"
import { layer as projection, Projections } from "../../projections/ProjectionRunner.ts"
import { ProjectionStore } from "../../projections/ProjectionStore.ts"
import { appendEntityEvents } from "../fixtures/entityEvents.ts"
import { tempDir } from "../fixtures/tempDir.ts"

/** The platform's read side on two SQLite files in `dir`: store, read model, projection feeding it. */
const readSide = (dir: string) =>
  projection.pipe(
    Layer.provideMerge(readModel({ path: join(dir, "readmodel.db"), snapshotEvery: 10 })),
    Layer.provideMerge(eventStore({ path: join(dir, "events.db") }))
  )

/** Waits (bounded) until the read model has applied everything in the store. */
const caughtUp = Effect.gen(function*() {
  const head = yield* (yield* EventStore).headPosition
  const checkpoint = yield* (yield* ProjectionStore).checkpoint("entities")
  if (checkpoint !== head) return yield* Effect.fail("behind" as const)
}).pipe(Effect.retry(Schedule.spaced("10 millis").pipe(Schedule.upTo({ times: 500 }))))

const ids = ["9", "10", "11", "100", "18446744073709551615"]

describe("entity read model (the entities projection)", () => {
  it.live("holds every entity's current state, listed in numeric id order across pages", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("projection")
      yield* Effect.gen(function*() {
        for (const id of ids) yield* appendEntityEvents({ type: "advertiser", id }, 3)
        yield* caughtUp
        const model = yield* EntityReadModel
        const first = yield* model.list("advertiser", { limit: 2 })
        const second = yield* model.list("advertiser", { limit: 2, after: first.items[1]!.id })
        const third = yield* model.list("advertiser", { limit: 2, after: second.items[1]!.id })
        assert.deepStrictEqual([...first.items, ...second.items, ...third.items].map((e) => e.id), ids)
        assert.deepStrictEqual([first.more, second.more, third.more], [true, true, false])
        const one = yield* model.get("advertiser", "10")
        assert.strictEqual(Option.getOrThrow(one).revision, 2)
        assert.deepStrictEqual(Option.getOrThrow(one).state, { name: "advertiser 10", n: 2 })
      }).pipe(Effect.provide(readSide(dir)))
    }))

  it.live("resumes from its checkpoint after a restart without applying anything twice", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("projection")
      yield* Effect.gen(function*() {
        yield* appendEntityEvents({ type: "advertiser", id: "1" }, 5)
        yield* caughtUp
      }).pipe(Effect.provide(readSide(dir)))
      yield* Effect.gen(function*() {
        yield* appendEntityEvents({ type: "advertiser", id: "1" }, 2)
        yield* caughtUp
        const row = yield* (yield* EntityReadModel).get("advertiser", "1")
        assert.strictEqual(Option.getOrThrow(row).revision, 6)
        assert.deepStrictEqual(Option.getOrThrow(row).state, { name: "advertiser 1", n: 6 })
      }).pipe(Effect.provide(readSide(dir)))
    }))

  it.live("skips an event of a type it does not know and goes on with the rest", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("projection")
      yield* Effect.gen(function*() {
        yield* appendEntityEvents({ type: "advertiser", id: "1" }, 1)
        yield* (yield* EventStore).appendToStream(streamName("advertiser", "1"), [{
          eventId: "01900000-0000-7000-8000-0000000000ff",
          type: "EntityRenamedInTheFuture",
          data: {},
          metadata: { entityType: "advertiser", entityId: "1", commandId: "c", correlationId: "c", causationId: "c" }
        }], 0)
        yield* appendEntityEvents({ type: "advertiser", id: "1" }, 1)
        yield* appendEntityEvents({ type: "advertiser", id: "2" }, 1)
        yield* caughtUp
        const model = yield* EntityReadModel
        assert.strictEqual(Option.getOrThrow(yield* model.get("advertiser", "1")).revision, 2)
        assert.isTrue(Option.isSome(yield* model.get("advertiser", "2")))
      }).pipe(Effect.provide(readSide(dir)))
    }))

  it.live("rebuilds from the whole history to the same rows", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("projection")
      yield* Effect.gen(function*() {
        for (const id of ids) yield* appendEntityEvents({ type: "campaign", id }, 4)
        yield* caughtUp
        const model = yield* EntityReadModel
        const before = yield* model.list("campaign", { limit: 100 })
        yield* (yield* Projections).rebuild("entities")
        yield* caughtUp
        assert.deepStrictEqual(yield* model.list("campaign", { limit: 100 }), before)
        assert.strictEqual(before.items.length, ids.length)
      }).pipe(Effect.provide(readSide(dir)))
    }))

  it.live("keeps a snapshot every N revisions, and point-in-time reads from them equal a full replay", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("projection")
      yield* Effect.gen(function*() {
        for (let i = 0; i < 5; i++) {
          yield* appendEntityEvents({ type: "strategy", id: "5" }, 7)
          yield* Effect.sleep("3 millis") // distinct recorded times between batches
        }
        yield* caughtUp
        const model = yield* EntityReadModel
        const latest = yield* model.snapshotAtOrBefore("strategy", "5")
        assert.strictEqual(Option.getOrThrow(latest).revision, 29) // revisions 9, 19, 29 are kept
        const events = yield* (yield* EventStore).readStream(streamName("strategy", "5"))
        const kind = (yield* Deciders).get("strategy")!
        for (const at of events.map((e) => e.recordedAt)) {
          const replayed = kind.replay(events.filter((e) => e.recordedAt <= at))
          const read = yield* getEntity("strategy", "5", at)
          assert.strictEqual(Option.getOrThrow(read).revision, replayed.revision)
          assert.deepStrictEqual(Option.getOrThrow(read).state, kind.decider.toJson(replayed.state))
        }
        assert.isTrue(Option.isNone(yield* getEntity("strategy", "5", "2000-01-01T00:00:00.000Z")))
      }).pipe(Effect.provide(readSide(dir)))
    }))

  it.live("starts over from the whole history when its file has the older layout (rows without the decider's state)", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("projection")
      yield* Effect.gen(function*() {
        yield* appendEntityEvents({ type: "advertiser", id: "1" }, 3)
      }).pipe(Effect.provide(eventStore({ path: join(dir, "events.db") })))
      // what the previous version left: its tables and a checkpoint claiming everything was applied
      const old = new DatabaseSync(join(dir, "readmodel.db"))
      old.exec(`CREATE TABLE entities (type TEXT NOT NULL, id TEXT NOT NULL, revision INTEGER NOT NULL, position INTEGER NOT NULL,
        deleted INTEGER NOT NULL, state TEXT, created_at TEXT, updated_at TEXT, PRIMARY KEY (type, id)) WITHOUT ROWID;
        CREATE TABLE checkpoints (name TEXT PRIMARY KEY, position INTEGER NOT NULL);
        INSERT INTO checkpoints VALUES ('entities', 3);`)
      old.close()
      yield* Effect.gen(function*() {
        yield* caughtUp
        const row = yield* (yield* EntityReadModel).get("advertiser", "1")
        assert.strictEqual(Option.getOrThrow(row).revision, 2)
        assert.deepStrictEqual(Option.getOrThrow(row).state, { name: "advertiser 1", n: 2 })
      }).pipe(Effect.provide(readSide(dir)))
    }))
})
