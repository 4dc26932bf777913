/**
 * The segments projection catching up on a generated store of 200,000 user profile events (what a
 * 200,000-line file of 3 segments a line becomes: one SegmentsAdded per new profile, 3 memberships
 * each, from 3 partners over 50 segments), in events/s, beside a ceiling measured in the same run:
 * the same events read from the same store in pages of 1,000 and inserted by a plain loop into
 * SQLite, one row per event, one transaction per page. `npx node bench/segmentsProjection.ts`
 * (BENCH_SEGMENT_EVENTS to change the count). The read model holds the segments projection alone
 * (no entity types registered): with `userprofile` registered, the `entities` projection folds every
 * profile into the same file too, and that is its cost, not this one's.
 */
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { DatabaseSync } from "node:sqlite"
import { Context, Effect, Layer, References } from "effect"
import { Deciders, makeRegistry } from "../domain/DeciderRegistry.ts"
import { EventStore, type RecordedEvent, type StreamAppend } from "../domain/EventStore.ts"
import { uuidv7 } from "../domain/uuidv7.ts"
import { layerSqlite as eventStoreSqlite } from "../infra/eventstore/sqlite.ts"
import { segmentsProjection } from "../infra/readmodel/segments.ts"
import { layerSqlite as segmentQueries } from "../infra/readmodel/segmentsQueries.ts"
import { layerSqlite as readModelSqlite } from "../infra/readmodel/sqlite.ts"
import { SegmentReadModel } from "../projections/ingest/segments.ts"
import * as ProjectionRunner from "../projections/ProjectionRunner.ts"
import { ProjectionStore } from "../projections/ProjectionStore.ts"
import { round2 } from "./stats.ts"

const totalEvents = Number(process.env.BENCH_SEGMENT_EVENTS ?? 200_000)
const segmentsPerEvent = 3
const segmentPool = 50
const partners = ["alpha", "beta", "gamma"]
const streamsPerAppend = 1_000
const page = 1_000

// Not bench/platform.ts's helpers: that module loads the whole platform, and this needs only the read side.
const benchDir = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(tmpdir(), "tributary-bench-segments-"))),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)
const quietLogs = Layer.succeed(References.MinimumLogLevel, "Warn")

const newId = () => uuidv7(Date.now(), crypto.getRandomValues(new Uint8Array(10)))

const profileEvent = (i: number): StreamAppend => {
  const profile = `cookie:u${i}`
  const partner = partners[i % partners.length]!
  const commandId = newId()
  const time = "2026-03-01T00:00:00Z"
  const memberships = Array.from({ length: segmentsPerEvent }, (_, k) => {
    const segmentId = String(1_000 + ((i * 7 + k * 13) % segmentPool))
    return { partner, segmentId, time, expiresAt: "2026-04-01T00:00:00Z", source: { partner, jobId: "job-1", digest: "0".repeat(64), line: i + 1 } }
  })
  return {
    stream: `userprofile-${profile}`,
    expectedRevision: "no_stream",
    events: [{
      eventId: newId(),
      type: "SegmentsAdded",
      data: { memberships },
      metadata: { entityType: "userprofile", entityId: profile, commandId, correlationId: commandId, causationId: commandId }
    }]
  }
}

/** The ceiling: the store's pages, one plain INSERT per event, one transaction per page. */
const plainLoop = (events: EventStore["Service"], path: string) =>
  Effect.gen(function*() {
    const db = new DatabaseSync(path)
    db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; CREATE TABLE rows (profile TEXT PRIMARY KEY, data TEXT NOT NULL) WITHOUT ROWID")
    const insert = db.prepare("INSERT INTO rows VALUES (?, ?)")
    const started = performance.now()
    let from: number | undefined = undefined
    let count = 0
    for (;;) {
      const read: ReadonlyArray<RecordedEvent> = yield* events.readAll({ ...(from === undefined ? {} : { fromPosition: from }), maxCount: page + 1 })
      const slice = read.slice(0, page)
      db.exec("BEGIN")
      for (const event of slice) insert.run(event.stream, JSON.stringify(event.data))
      db.exec("COMMIT")
      count += slice.length
      from = read[page]?.position
      if (from === undefined) break
    }
    db.close()
    return { count, seconds: (performance.now() - started) / 1000 }
  })

const run = Effect.scoped(Effect.gen(function*() {
  const dir = yield* benchDir
  const store = yield* Layer.build(eventStoreSqlite({ path: join(dir, "events.db") }))
  const events = Context.get(store, EventStore)

  const appendStarted = performance.now()
  for (let i = 0; i < totalEvents; i += streamsPerAppend) {
    yield* events.appendToStreams(Array.from({ length: Math.min(streamsPerAppend, totalEvents - i) }, (_, k) => profileEvent(i + k)))
  }
  const appendSeconds = (performance.now() - appendStarted) / 1000
  const head = yield* events.headPosition

  const path = join(dir, "readmodel.db")
  const model = readModelSqlite({ path, projections: [segmentsProjection()] }).pipe(Layer.provide(Layer.succeed(Deciders, makeRegistry([]))))
  const projectStarted = performance.now()
  const readSide = yield* Layer.build(
    ProjectionRunner.layer.pipe(
      Layer.provideMerge(Layer.mergeAll(model, segmentQueries({ path }).pipe(Layer.provide(model)))),
      Layer.provide(Layer.succeedContext(store))
    )
  )
  const projections = Context.get(readSide, ProjectionStore)
  while ((yield* projections.checkpoint("segments")) !== head) yield* Effect.sleep("20 millis")
  const projectSeconds = (performance.now() - projectStarted) / 1000

  // Every (profile, segment) is distinct: the members of all segments add up to the memberships written.
  const queries = Context.get(readSide, SegmentReadModel)
  let members = 0
  for (let s = 0; s < segmentPool; s++) {
    const segment = yield* queries.get(String(1_000 + s), { from: "2026-01-01", to: "2026-12-31" })
    if (segment._tag === "Some") members += segment.value.members
  }

  const ceiling = yield* plainLoop(events, join(dir, "ceiling.db"))
  const eventsPerSecond = Math.round(totalEvents / projectSeconds)
  const ceilingPerSecond = Math.round(ceiling.count / ceiling.seconds)
  return {
    name: "segmentsProjection",
    setup: { totalEvents, segmentsPerEvent, segmentPool, partners: partners.length, page },
    appendSeconds: round2(appendSeconds),
    projectSeconds: round2(projectSeconds),
    eventsPerSecond,
    membershipsPerSecond: Math.round((totalEvents * segmentsPerEvent) / projectSeconds),
    ceiling: { what: "same pages from the store, one plain INSERT per event, a transaction per page", seconds: round2(ceiling.seconds), eventsPerSecond: ceilingPerSecond },
    ratio: round2(eventsPerSecond / ceilingPerSecond),
    membersCounted: members,
    membersExpected: totalEvents * segmentsPerEvent,
    correct: members === totalEvents * segmentsPerEvent
  }
})).pipe(Effect.provide(quietLogs))

export const benchSegmentsProjection = () => Effect.runPromise(run)

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(await benchSegmentsProjection(), null, 2))
}
