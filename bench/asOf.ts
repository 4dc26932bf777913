/**
 * (d) Point-in-time reads of one entity with 10,000 events: `getEntity(type, id, asOf)` for asOf
 * instants spread over its history, (i) with the kept snapshots the projection writes every
 * SNAPSHOT_EVERY revisions and (ii) with a read model that keeps none (a full replay from revision 0).
 * The events are appended to the SQLite event store in the entity event format, a few per append so
 * their recordedAt spreads over time; the projection then builds the read model from the store.
 */
import { join } from "node:path"
import { Context, Effect, Layer, Option } from "effect"
import { advertiser } from "../domain/entities/advertiser.ts"
import { EntityCreated, EntityUpdated } from "../domain/entities/record.ts"
import { makeEntityKind } from "../domain/EntityKind.ts"
import type { EventMetadata } from "../domain/envelope.ts"
import { EventStore, type EventData } from "../domain/EventStore.ts"
import { uuidv7 } from "../domain/uuidv7.ts"
import { layerSqlite as eventStoreSqlite } from "../infra/eventstore/sqlite.ts"
import { layerSqlite as readModelSqlite } from "../infra/readmodel/sqlite.ts"
import * as ProjectionRunner from "../projections/ProjectionRunner.ts"
import { ProjectionStore } from "../projections/ProjectionStore.ts"
import { getEntity } from "../projections/EntityQueries.ts"
import { benchDir, quietLogs } from "./platform.ts"
import { latencies, round2 } from "./stats.ts"
import type { SummaryRow } from "./summary.ts"

const totalEvents = 10_000
const eventsPerAppend = 10
const snapshotEvery = 100
const samples = Number(process.env.BENCH_ASOF_SAMPLES ?? 200)
const targetSpeedup = 20
const targetMs = 10

const type = "advertiser"
const records = makeEntityKind(advertiser)
const id = "7000000"
const newId = () => uuidv7(Date.now(), crypto.getRandomValues(new Uint8Array(10)))

const eventAt = (revision: number): EventData => {
  const commandId = newId()
  const metadata: EventMetadata = { entityType: type, entityId: id, commandId, correlationId: commandId, causationId: commandId }
  const event = revision === 0
    ? EntityCreated.make({ fields: { name: "advertiser 0", currency: "USD", status: "active" } })
    : EntityUpdated.make({ changes: { name: `advertiser ${revision}`, ...(revision % 7 === 0 ? { domain: `d${revision}.example.com` } : {}) } })
  return { eventId: newId(), ...records.toEventData(event), metadata }
}

/** A seeded generator, so every run asks for the same spread of instants. */
const random = (seed: number) => () => {
  seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648
  return seed / 2_147_483_648
}

/** Times `getEntity` at each instant (after a few untimed warm-up reads); returns ms per read and the revisions read. */
const timeReads = (instants: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    for (const asOf of instants.slice(0, 20)) yield* getEntity(type, id, asOf)
    const ms: Array<number> = []
    const revisions: Array<number> = []
    for (const asOf of instants) {
      const t0 = performance.now()
      const entity = yield* getEntity(type, id, asOf)
      ms.push(performance.now() - t0)
      revisions.push(Option.match(entity, { onNone: () => -1, onSome: (e) => e.revision }))
    }
    return { ms, revisions }
  })

const run = Effect.scoped(Effect.gen(function*() {
  const dir = yield* benchDir("asof")
  const store = yield* Layer.build(eventStoreSqlite({ path: join(dir, "events.db") }))
  const events = Context.get(store, EventStore)

  const appendStarted = performance.now()
  for (let revision = 0; revision < totalEvents; revision += eventsPerAppend) {
    const batch = Array.from({ length: eventsPerAppend }, (_, k) => eventAt(revision + k))
    yield* events.appendToStream(`${type}-${id}`, batch, revision === 0 ? "no_stream" : revision - 1)
  }
  const appendSeconds = (performance.now() - appendStarted) / 1000

  // (i) the projection builds the read model, keeping a snapshot every `snapshotEvery` revisions
  const withSnapshots = yield* Layer.build(
    ProjectionRunner.layer.pipe(Layer.provideMerge(readModelSqlite({ path: join(dir, "readmodel.db"), snapshotEvery })), Layer.provide(Layer.succeedContext(store)))
  )
  const head = yield* events.headPosition
  const projectStarted = performance.now()
  const projections = Context.get(withSnapshots, ProjectionStore)
  while ((yield* projections.checkpoint("entities")) !== head) yield* Effect.sleep("20 millis")
  const projectSeconds = (performance.now() - projectStarted) / 1000

  // (ii) a read model that keeps no snapshots: every read folds from revision 0
  const withoutSnapshots = yield* Layer.build(readModelSqlite({ path: join(dir, "empty-readmodel.db"), snapshotEvery }))

  const all = yield* events.readStream(`${type}-${id}`)
  const first = Date.parse(all[0]!.recordedAt)
  const last = Date.parse(all[all.length - 1]!.recordedAt)
  const next = random(42)
  const instants = Array.from({ length: samples }, () => new Date(first + Math.floor(next() * (last - first + 1))).toISOString())

  const snapshotted = yield* timeReads(instants).pipe(Effect.provideContext(Context.merge(store, withSnapshots)))
  const replayed = yield* timeReads(instants).pipe(Effect.provideContext(Context.merge(store, withoutSnapshots)))
  const mismatches = snapshotted.revisions.filter((r, i) => r !== replayed.revisions[i]).length
  return {
    appendSeconds: round2(appendSeconds),
    projectSeconds: round2(projectSeconds),
    historySpanMs: last - first,
    snapshotsKept: Math.floor(totalEvents / snapshotEvery),
    withSnapshots: latencies(snapshotted.ms),
    withoutSnapshots: latencies(replayed.ms),
    mismatches
  }
})).pipe(Effect.provide(quietLogs))

export const benchAsOf = async () => {
  const r = await Effect.runPromise(run)
  const speedup = { p50: round2(r.withoutSnapshots.p50 / r.withSnapshots.p50), p99: round2(r.withoutSnapshots.p99 / r.withSnapshots.p99) }
  const pass = {
    speedup: speedup.p50 >= targetSpeedup,
    withSnapshotsUnder10ms: r.withSnapshots.p50 < targetMs && r.withSnapshots.p99 < targetMs,
    sameAnswers: r.mismatches === 0
  }
  const result = {
    name: "asOf",
    setup: { totalEvents, eventsPerAppend, snapshotEvery, samples, reads: "getEntity(type, id, asOf), asOf uniform over the history (seeded)" },
    ...r,
    speedup,
    target: { speedupAtLeast: targetSpeedup, withSnapshotsP50AndP99BelowMs: targetMs },
    pass
  }
  const rows: Array<SummaryRow> = [
    {
      benchmark: "(d) asOf, 10,000 events: speed-up from snapshots",
      figure: `with snapshots p50 ${r.withSnapshots.p50} ms, p99 ${r.withSnapshots.p99} ms`,
      ceiling: `full replay p50 ${r.withoutSnapshots.p50} ms, p99 ${r.withoutSnapshots.p99} ms (the baseline)`,
      ratio: speedup.p50,
      target: `≥ ${targetSpeedup}× (p50; p99 ${speedup.p99}×)`,
      pass: pass.speedup && pass.sameAnswers
    },
    {
      benchmark: "(d) asOf with snapshots under 10 ms",
      figure: `p50 ${r.withSnapshots.p50} ms, p99 ${r.withSnapshots.p99} ms`,
      ceiling: "—",
      ratio: round2(targetMs / r.withSnapshots.p99),
      target: `p50 and p99 < ${targetMs} ms`,
      pass: pass.withSnapshotsUnder10ms
    }
  ]
  return { result, rows }
}

if (import.meta.main) {
  const { result } = await benchAsOf()
  console.log(JSON.stringify(result, null, 2))
}
