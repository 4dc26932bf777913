import { assert, describe, it } from "@effect/vitest"
import type { DatabaseSync } from "node:sqlite"
import { join } from "node:path"
import { Effect, Layer, Metric, Schedule } from "effect"
import { EventStore } from "../../domain/EventStore.ts"
import { layerSqlite as eventStore } from "../../infra/eventstore/sqlite.ts"
import { layerSqlite as readModel } from "../../infra/readmodel/sqlite.ts"
import type { Projection } from "../../projections/Projection.ts"
import { layer as runner, projectionLag, Projections } from "../../projections/ProjectionRunner.ts"
import { ProjectionStore } from "../../projections/ProjectionStore.ts"
import { appendEntityEvents } from "../fixtures/entityEvents.ts"
import { tempDir } from "../fixtures/tempDir.ts"

/** A second projection, declared as data: how many events of each type there are. */
const eventTypes: Projection<DatabaseSync> = {
  name: "event_types",
  init: (db, { rebuild }) => {
    if (rebuild) db.exec("DROP TABLE IF EXISTS event_types")
    db.exec("CREATE TABLE IF NOT EXISTS event_types (type TEXT PRIMARY KEY, count INTEGER NOT NULL)")
  },
  canHandle: (event) => event.entityType === "advertiser",
  evolve: (db, events) => {
    const add = db.prepare("INSERT INTO event_types VALUES (?, 1) ON CONFLICT (type) DO UPDATE SET count = count + 1")
    for (const event of events) add.run(event.type)
    return { skipped: [] }
  }
}

let database: DatabaseSync | undefined
const counts = Effect.sync(() => Object.fromEntries((database!.prepare("SELECT type, count FROM event_types ORDER BY type").all() as Array<{ type: string; count: number }>).map((r) => [r.type, r.count])))

const readSide = (dir: string) =>
  runner.pipe(
    Layer.provideMerge(readModel({ path: join(dir, "readmodel.db"), projections: [{ ...eventTypes, init: (db, options) => { database = db; eventTypes.init(db, options) } }] })),
    Layer.provideMerge(eventStore({ path: join(dir, "events.db") }))
  )

const caughtUp = (name: string) => Effect.gen(function*() {
  const head = yield* (yield* EventStore).headPosition
  if ((yield* (yield* ProjectionStore).checkpoint(name)) !== head) return yield* Effect.fail("behind" as const)
}).pipe(Effect.retry(Schedule.spaced("10 millis").pipe(Schedule.upTo({ times: 500 }))))

describe("projections as data", () => {
  it.live("runs every declared projection from its own checkpoint, rebuilds one by name, and reports each one's lag", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("projections")
      yield* Effect.gen(function*() {
        const projections = yield* Projections
        assert.deepStrictEqual(projections.names, ["entities", "event_types"])
        yield* appendEntityEvents({ type: "advertiser", id: "1" }, 3)
        yield* appendEntityEvents({ type: "campaign", id: "2" }, 2)
        yield* caughtUp("event_types")
        yield* caughtUp("entities")
        assert.deepStrictEqual(yield* counts, { EntityCreated: 1, EntityUpdated: 2 })
        const lag = Metric.withAttributes(projectionLag, { projection: "event_types" })
        assert.strictEqual((yield* Metric.value(lag)).value, 0)

        // A rebuild starts that projection over (not counting twice) and leaves the other where it is.
        const entitiesBefore = yield* (yield* ProjectionStore).checkpoint("entities")
        yield* projections.rebuild("event_types")
        yield* caughtUp("event_types")
        assert.deepStrictEqual(yield* counts, { EntityCreated: 1, EntityUpdated: 2 })
        assert.strictEqual(yield* (yield* ProjectionStore).checkpoint("entities"), entitiesBefore)

        const unknown = yield* Effect.flip(projections.rebuild("nope"))
        assert.strictEqual(unknown._tag, "ProjectionNotFound")
      }).pipe(Effect.provide(readSide(dir)))
      // after a restart each resumes from its checkpoint: nothing is counted twice
      yield* Effect.gen(function*() {
        yield* appendEntityEvents({ type: "advertiser", id: "1" }, 1)
        yield* caughtUp("event_types")
        assert.deepStrictEqual(yield* counts, { EntityCreated: 1, EntityUpdated: 3 })
      }).pipe(Effect.provide(readSide(dir)))
    }))
})
