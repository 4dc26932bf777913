/**
 * `delivery.db`, the packages' SQLite file under DATA_DIR: the `delivery-packages` projection's state
 * and checkpoint (a ProjectionStore of that one projection, for ProjectionRunner), the outbox the
 * publisher drains to DELIVER, and refreshes (on request, on schedule). Every process on a DATA_DIR
 * opens it (any may answer a refresh request); only the holder of `job.delivery-packages` runs the
 * projection and the publisher. WAL: the publisher's reads do not wait for the projection's writes.
 */
import { DatabaseSync } from "node:sqlite"
import { Context, Effect, Layer, Option } from "effect"
import type { Chunk } from "../../domain/delivery/Chunk.ts"
import type { Backlog } from "../../domain/delivery/DeliveryBacklog.ts"
import { targetsOf } from "../../domain/delivery/packaging.ts"
import type { EventEnvelope } from "../../domain/envelope.ts"
import { ProjectionStore } from "../../projections/ProjectionStore.ts"
import { ReadModelError } from "../../projections/ReadModelError.ts"
import { transaction } from "../sqliteTransaction.ts"
import { destinationOf, packagesProjection, prepare, writeChunk, writeRefresh } from "./packagesSqlite.ts"
import { execOnOpen } from "../sqliteOpen.ts"

/** A chunk waiting in the outbox: its DELIVER subject, `Nats-Msg-Id`, body, and the lane count it was split for (none: written before chunks were stamped). */
export interface OutboxRow {
  readonly id: number
  readonly subject: string
  readonly msgId: string
  readonly chunk: string
  readonly records: number
  readonly lanes: number | undefined
  /** the destination's incarnation the chunk is stamped with (none: written before incarnations) */
  readonly incarnation: number | undefined
}

/**
 * A destination with chunks in the outbox: the lane count of its oldest one there, and of those it had
 * published last (none: not known); whether packaging saw it deleted, and its incarnation now.
 */
export interface OutboxDestination {
  readonly destination: string
  readonly nextLanes: number | undefined
  readonly publishedLanes: number | undefined
  readonly deleted: boolean
  readonly incarnation: number | undefined
}

/** A destination with a refresh period, and when it was refreshed last (epoch millis; none: never by schedule). */
export interface ScheduledRefresh {
  readonly destination: string
  readonly everySeconds: number
  readonly lastAt: number | undefined
}

export class PackagesDb extends Context.Service<PackagesDb, {
  /** the projection's store, for ProjectionRunner */
  readonly store: ProjectionStore["Service"]
  /** The destinations with chunks in the outbox. */
  readonly destinations: Effect.Effect<ReadonlyArray<OutboxDestination>, ReadModelError>
  /** A destination's oldest chunks in the outbox, at most `limit`, in the order they were written. */
  readonly pending: (destination: string, limit: number) => Effect.Effect<ReadonlyArray<OutboxRow>, ReadModelError>
  /**
   * Forgets a destination's outbox rows up to `id` (all on DELIVER), and keeps `lanes` as the lane count
   * of its chunks published last (unchanged when undefined), in one transaction.
   */
  readonly published: (destination: string, id: number, lanes: number | undefined) => Effect.Effect<void, ReadModelError>
  /** What the outbox holds: the part of the backlog not yet on DELIVER. */
  readonly backlog: Effect.Effect<Backlog, ReadModelError>
  /** What the outbox holds of one destination. */
  readonly waiting: (destination: string) => Effect.Effect<Backlog, ReadModelError>
  /** Forgets the outbox rows of the destination (it was deleted), those before row `before` only when given; returns what they held. */
  readonly drop: (destination: string, before?: number) => Effect.Effect<Backlog, ReadModelError>
  /** The place of the next row written to the outbox (ids only grow): a bound for `drop`. */
  readonly nextRow: Effect.Effect<number, ReadModelError>
  /** Puts chunks in the outbox after everything it holds (a dead letter replayed), in one transaction. */
  readonly enqueue: (chunks: ReadonlyArray<Chunk>) => Effect.Effect<void, ReadModelError>
  /** Whether packaging saw the destination deleted (and not created again since). */
  readonly deleted: (destination: string) => Effect.Effect<boolean, ReadModelError>
  /** The revision of the destination's last event packaging applied; None when it has applied none. */
  readonly packagedRevision: (destination: string) => Effect.Effect<Option.Option<number>, ReadModelError>
  /** Writes a refresh of the destination; None when the destination is unknown (or deleted, or takes nothing). */
  readonly refresh: (destination: string, refresh: { readonly packageId: string; readonly at: number }) => Effect.Effect<Option.Option<number>, ReadModelError>
  /** The destinations refreshed on a schedule. */
  readonly scheduled: Effect.Effect<ReadonlyArray<ScheduledRefresh>, ReadModelError>
}>()("tributary/infra/PackagesDb") {
  static readonly layer = (options: { readonly path: string; readonly maxRecords: number }) => Layer.effect(PackagesDb, make(options))
}

const open = (path: string) =>
  Effect.acquireRelease(
    Effect.try({
      try: () => {
        const db = new DatabaseSync(path, { timeout: 10_000 })
        execOnOpen(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000;")
        execOnOpen(db, "CREATE TABLE IF NOT EXISTS checkpoints (name TEXT PRIMARY KEY, position INTEGER NOT NULL)")
        return db
      },
      catch: (cause) => new ReadModelError({ operation: "open delivery.db", cause })
    }),
    (db) => Effect.sync(() => db.close())
  )

const make = (options: { readonly path: string; readonly maxRecords: number }) =>
  Effect.gen(function*() {
    const db = yield* open(options.path)
    const use = <A>(operation: string, f: () => A) => Effect.try({ try: f, catch: (cause) => new ReadModelError({ operation, cause }) })
    const projection = packagesProjection({ maxRecords: options.maxRecords })
    yield* use("init", () => transaction(db, () => projection.init(db, { rebuild: false })))
    const s = prepare(db)

    const getCheckpoint = db.prepare("SELECT position FROM checkpoints WHERE name = ?")
    const setCheckpoint = db.prepare("INSERT OR REPLACE INTO checkpoints VALUES (?, ?)")
    const deleteCheckpoint = db.prepare("DELETE FROM checkpoints WHERE name = ?")
    // the distinct destinations and their oldest chunk's lane count, from the index alone (never a chunk's body),
    // a few seeks each (a skip scan) whatever the rows of each
    const destinations = db.prepare(`
      WITH RECURSIVE heads(destination) AS (
        SELECT min(destination) FROM delivery_outbox
        UNION ALL SELECT (SELECT min(destination) FROM delivery_outbox WHERE destination > heads.destination) FROM heads WHERE heads.destination IS NOT NULL)
      SELECT heads.destination,
        (SELECT lanes FROM delivery_outbox WHERE destination = heads.destination ORDER BY id LIMIT 1) AS next_lanes,
        published.lanes AS published_lanes, (d.destination IS NOT NULL AND d.fields IS NULL) AS deleted, d.incarnation
      FROM heads LEFT JOIN delivery_published_lanes published USING (destination)
        LEFT JOIN delivery_destinations d USING (destination)
      WHERE heads.destination IS NOT NULL`)
    const pending = db.prepare(
      "SELECT id, subject, msg_id, chunk, records, lanes, json_extract(chunk, '$.incarnation') AS incarnation FROM delivery_outbox WHERE destination = ? ORDER BY id LIMIT ?"
    )
    const deleteUpTo = db.prepare("DELETE FROM delivery_outbox WHERE destination = ? AND id <= ?")
    const setPublishedLanes = db.prepare("INSERT OR REPLACE INTO delivery_published_lanes VALUES (?, ?)")
    const backlog = db.prepare("SELECT count(*) AS chunks, coalesce(sum(records), 0) AS records FROM delivery_outbox")
    // a destination's rows before a row id (all of them: MAX_SAFE_INTEGER)
    const waiting = db.prepare("SELECT count(*) AS chunks, coalesce(sum(records), 0) AS records FROM delivery_outbox WHERE destination = ? AND id < ?")
    const drop = db.prepare("DELETE FROM delivery_outbox WHERE destination = ? AND id < ?")
    // AUTOINCREMENT: sqlite_sequence holds the highest id ever given, so the next one is past it
    const nextRow = db.prepare("SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'delivery_outbox'), 0) + 1 AS next")
    const live = db.prepare("SELECT d.destination, d.fields, r.last_at FROM delivery_destinations d LEFT JOIN delivery_refreshes r USING (destination) WHERE d.fields IS NOT NULL")
    const setRefreshed = db.prepare("INSERT OR REPLACE INTO delivery_refreshes VALUES (?, ?)")

    const store = ProjectionStore.of({
      names: [projection.name],
      checkpoint: (name) => use("checkpoint", () => (getCheckpoint.get(name) as { position: number } | undefined)?.position),
      reset: (name) =>
        use("reset", () =>
          transaction(db, () => {
            projection.init(db, { rebuild: true })
            deleteCheckpoint.run(name)
          })),
      apply: (name, events: ReadonlyArray<EventEnvelope>, position) =>
        use("apply", () =>
          transaction(db, () => {
            const handled = events.filter(projection.canHandle)
            const { skipped } = handled.length === 0 ? { skipped: [] } : projection.evolve(db, handled)
            setCheckpoint.run(name, position)
            return skipped
          }))
    })

    return PackagesDb.of({
      store,
      destinations: use("read outbox destinations", () =>
        (destinations.all() as unknown as Array<{
          destination: string
          next_lanes: number | null
          published_lanes: number | null
          deleted: number | null
          incarnation: number | null
        }>).map((row) => ({
          destination: row.destination,
          nextLanes: row.next_lanes ?? undefined,
          publishedLanes: row.published_lanes ?? undefined,
          deleted: row.deleted === 1,
          incarnation: row.incarnation ?? undefined
        }))),
      pending: (destination, limit) =>
        use("read outbox", () =>
          (pending.all(destination, limit) as unknown as Array<
            { id: number; subject: string; msg_id: string; chunk: string; records: number; lanes: number | null; incarnation: number | null }
          >).map((row) => ({
            id: row.id,
            subject: row.subject,
            msgId: row.msg_id,
            chunk: row.chunk,
            records: row.records,
            lanes: row.lanes ?? undefined,
            incarnation: row.incarnation ?? undefined
          }))),
      published: (destination, id, lanes) =>
        use("delete published", () =>
          transaction(db, () => {
            deleteUpTo.run(destination, id)
            if (lanes !== undefined) setPublishedLanes.run(destination, lanes)
          })),
      backlog: use("backlog", () => backlog.get() as unknown as Backlog),
      waiting: (destination) => use("destination's outbox", () => waiting.get(destination, Number.MAX_SAFE_INTEGER) as unknown as Backlog),
      drop: (destination, before = Number.MAX_SAFE_INTEGER) =>
        use("drop a destination's outbox", () =>
          transaction(db, () => {
            const held = waiting.get(destination, before) as unknown as Backlog
            drop.run(destination, before)
            return held
          })),
      nextRow: use("next outbox row", () => (nextRow.get() as { readonly next: number }).next),
      enqueue: (chunks) => use("enqueue", () => transaction(db, () => chunks.forEach((chunk) => writeChunk(s, chunk)))),
      deleted: (destination) =>
        use("deleted destination", () => {
          const row = s.destination.get(destination) as { readonly fields: string | null } | undefined
          return row !== undefined && row.fields === null
        }),
      packagedRevision: (destination) =>
        use("packaged revision", () => Option.fromNullishOr((s.destination.get(destination) as { readonly revision: number } | undefined)?.revision)),
      refresh: (destination, { packageId, at }) =>
        use("refresh", () =>
          transaction(db, () => {
            const live = destinationOf(s, destination)
            const targets = live === undefined ? undefined : targetsOf(live.fields)
            if (live === undefined || targets === undefined) return Option.none<number>()
            const records = writeRefresh(s, {
              destination,
              targets,
              packageId,
              incarnation: live.incarnation,
              time: new Date(at).toISOString(),
              maxRecords: options.maxRecords
            })
            setRefreshed.run(destination, at)
            return Option.some(records)
          })),
      scheduled: use("scheduled refreshes", () =>
        (live.all() as unknown as Array<{ destination: string; fields: string; last_at: number | null }>).flatMap((row) => {
          const every = targetsOf(JSON.parse(row.fields))?.refreshEvery
          return every === undefined ? [] : [{ destination: row.destination, everySeconds: every, lastAt: row.last_at ?? undefined }]
        }))
    })
  })
