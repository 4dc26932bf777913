/**
 * The read models in a SQLite file (node:sqlite), one per query node: the projections' storage and
 * checkpoints (ProjectionStore), the entity queries (EntityReadModel) and the kept snapshots entity
 * actors activate from (KeptSnapshots). All its SQL is in infra/readmodel/.
 */
import { DatabaseSync } from "node:sqlite"
import { Context, Effect, Layer, Option } from "effect"
import { Deciders } from "../../domain/DeciderRegistry.ts"
import type { EventEnvelope } from "../../domain/envelope.ts"
import { KeptSnapshots, KeptSnapshotsError } from "../../domain/KeptSnapshots.ts"
import { EntityReadModel } from "../../projections/EntityReadModel.ts"
import type { Projection } from "../../projections/Projection.ts"
import { ProjectionStore } from "../../projections/ProjectionStore.ts"
import { ReadModelError } from "../../projections/ReadModelError.ts"
import { entitiesProjection } from "./entities.ts"
import { fromRow, publicOf, type Row } from "./rows.ts"
import { transaction } from "../sqliteTransaction.ts"
import { execOnOpen } from "../sqliteOpen.ts"

/**
 * Version of the read models' layout. A file of an older layout (rows without the decider's state)
 * starts over: read models are derived, and the projections replay history into them.
 */
const LAYOUT = 2

export interface ReadModelOptions {
  readonly path: string
  /** keep a point-in-time snapshot every N revisions, for deciders that do not say; default 100 */
  readonly snapshotEvery?: number
  /** more projections stored here, beside `entities` */
  readonly projections?: ReadonlyArray<Projection<DatabaseSync>>
}

const open = (path: string) =>
  Effect.acquireRelease(
    Effect.try({
      try: () => {
        // timeout: the busy wait from the first statement on (switching to WAL takes a lock another process starting at the same instant may hold)
        const db = new DatabaseSync(path, { timeout: 5_000 })
        execOnOpen(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;")
        const layout = (db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version
        if (layout !== LAYOUT) {
          db.exec(`DROP TABLE IF EXISTS entities; DROP TABLE IF EXISTS entity_snapshots; DROP TABLE IF EXISTS checkpoints; PRAGMA user_version = ${LAYOUT};`)
        }
        db.exec("CREATE TABLE IF NOT EXISTS checkpoints (name TEXT PRIMARY KEY, position INTEGER NOT NULL)")
        return db
      },
      catch: (cause) => new ReadModelError({ operation: "open", cause })
    }),
    (db) => Effect.sync(() => db.close())
  )

export const layerSqlite = (options: ReadModelOptions) =>
  Layer.effectContext(Effect.gen(function*() {
    const registry = yield* Deciders
    const db = yield* open(options.path)
    const use = <A>(operation: string, f: () => A) => Effect.try({ try: f, catch: (cause) => new ReadModelError({ operation, cause }) })

    const projections = new Map<string, Projection<DatabaseSync>>()
    for (const p of [entitiesProjection({ registry, snapshotEvery: options.snapshotEvery ?? 100 }), ...(options.projections ?? [])]) {
      if (projections.has(p.name)) return yield* new ReadModelError({ operation: "open", cause: `two projections are named ${p.name}` })
      projections.set(p.name, p)
    }
    yield* use("init", () => transaction(db, () => projections.forEach((p) => p.init(db, { rebuild: false }))))

    const setCheckpoint = db.prepare(`INSERT OR REPLACE INTO checkpoints VALUES (?, ?)`)
    const getCheckpoint = db.prepare(`SELECT position FROM checkpoints WHERE name = ?`)
    const deleteCheckpoint = db.prepare(`DELETE FROM checkpoints WHERE name = ?`)
    const projection = (name: string) => {
      const p = projections.get(name)
      if (p === undefined) throw new Error(`no projection ${name}`)
      return p
    }

    const store = ProjectionStore.of({
      names: [...projections.keys()],
      checkpoint: (name) => use("checkpoint", () => (getCheckpoint.get(name) as { position: number } | undefined)?.position),
      reset: (name) =>
        use("reset", () =>
          transaction(db, () => {
            projection(name).init(db, { rebuild: true })
            deleteCheckpoint.run(name)
          })),
      apply: (name, events: ReadonlyArray<EventEnvelope>, position) =>
        use("apply", () =>
          transaction(db, () => {
            const p = projection(name)
            const handled = events.filter(p.canHandle)
            const { skipped } = handled.length === 0 ? { skipped: [] } : p.evolve(db, handled)
            setCheckpoint.run(name, position)
            return skipped
          }))
    })

    const select = db.prepare(`SELECT * FROM entities WHERE type = ? AND id = ?`)
    const firstPage = db.prepare(`SELECT * FROM entities WHERE type = ? AND deleted = 0 ORDER BY length(id), id LIMIT ?`)
    const nextPage = db.prepare(
      `SELECT * FROM entities WHERE type = ? AND deleted = 0 AND (length(id), id) > (length(?), ?) ORDER BY length(id), id LIMIT ?`
    )
    const keptAt = db.prepare(`SELECT * FROM entity_snapshots WHERE type = ? AND id = ? AND revision <= ? ORDER BY revision DESC LIMIT 1`)
    const keptBefore = db.prepare(`SELECT * FROM entity_snapshots WHERE type = ? AND id = ? AND updated_at <= ? ORDER BY revision DESC LIMIT 1`)
    const rowOf = (type: string, id: string) => select.get(type, id) as Row | undefined

    // The current row is a snapshot too, at its revision: the newest one there is.
    const atOrBefore = (type: string, id: string, revision: number | undefined) => {
      const current = rowOf(type, id)
      if (current !== undefined && (revision === undefined || current.revision <= revision)) return fromRow(current)
      const kept = keptAt.get(type, id, revision ?? Number.MAX_SAFE_INTEGER) as Row | undefined
      return kept === undefined ? undefined : fromRow(kept)
    }

    const queries = EntityReadModel.of({
      get: (type, id) => use("get", () => Option.map(Option.fromNullishOr(rowOf(type, id)), (row) => publicOf(fromRow(row)))),
      list: (type, { limit, after }) =>
        use("list", () => {
          const rows = (after === undefined ? firstPage.all(type, limit + 1) : nextPage.all(type, after, after, limit + 1)) as unknown as Array<Row>
          return { items: rows.slice(0, limit).map((row) => publicOf(fromRow(row))), more: rows.length > limit }
        }),
      snapshotAtOrBefore: (type, id, asOf) =>
        use("snapshotAtOrBefore", () => {
          const row = (asOf === undefined ? keptAt.get(type, id, Number.MAX_SAFE_INTEGER) : keptBefore.get(type, id, asOf)) as Row | undefined
          return Option.map(Option.fromNullishOr(row), fromRow)
        })
    })

    const kept = KeptSnapshots.of({
      atOrBefore: (type, id, revision) =>
        Effect.try({ try: () => Option.fromNullishOr(atOrBefore(type, id, revision)), catch: (cause) => new KeptSnapshotsError({ operation: "atOrBefore", cause }) })
    })

    return Context.make(ProjectionStore, store).pipe(Context.add(EntityReadModel, queries), Context.add(KeptSnapshots, kept))
  }))
