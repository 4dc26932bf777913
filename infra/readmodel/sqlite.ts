/**
 * The entity read model in a SQLite file (node:sqlite), one per query node. All its SQL is here.
 */
import { DatabaseSync } from "node:sqlite"
import { Effect, Layer, Option } from "effect"
import type { EventEnvelope } from "../../domain/envelope.ts"
import type { EntitySnapshot } from "../../domain/snapshot.ts"
import { EntityReadModel, ReadModelError } from "../../projections/EntityReadModel.ts"
import { keepsSnapshot, projectEvent } from "../../projections/projectEntity.ts"

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS entities (
    type TEXT NOT NULL, id TEXT NOT NULL, revision INTEGER NOT NULL, position INTEGER NOT NULL,
    deleted INTEGER NOT NULL, state TEXT, created_at TEXT, updated_at TEXT,
    PRIMARY KEY (type, id)
  ) WITHOUT ROWID;
  -- ids are 64-bit unsigned decimal strings: numeric order is (length, text)
  CREATE INDEX IF NOT EXISTS entities_by_type ON entities (type, deleted, length(id), id);
  CREATE TABLE IF NOT EXISTS entity_snapshots (
    type TEXT NOT NULL, id TEXT NOT NULL, revision INTEGER NOT NULL, position INTEGER NOT NULL,
    deleted INTEGER NOT NULL, state TEXT, created_at TEXT, updated_at TEXT,
    PRIMARY KEY (type, id, revision)
  ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS checkpoints (name TEXT PRIMARY KEY, position INTEGER NOT NULL);
`

interface Row {
  readonly type: string
  readonly id: string
  readonly revision: number
  readonly position: number
  readonly deleted: number
  readonly state: string | null
  readonly created_at: string | null
  readonly updated_at: string | null
}

const fromRow = (row: Row): EntitySnapshot => ({
  type: row.type,
  id: row.id,
  revision: row.revision,
  position: row.position,
  deleted: row.deleted === 1,
  state: row.state === null ? null : JSON.parse(row.state),
  createdAt: row.created_at,
  updatedAt: row.updated_at
})

const toParams = (s: EntitySnapshot) =>
  [s.type, s.id, s.revision, s.position, s.deleted ? 1 : 0, s.state === null ? null : JSON.stringify(s.state), s.createdAt, s.updatedAt] as const

export const layerSqlite = (options: { readonly path: string; readonly snapshotEvery?: number }) =>
  Layer.effect(
    EntityReadModel,
    Effect.gen(function*() {
      const every = options.snapshotEvery ?? 100
      const db = yield* Effect.acquireRelease(
        Effect.try({
          try: () => {
            const db = new DatabaseSync(options.path)
            db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;")
            db.exec(SCHEMA)
            return db
          },
          catch: (cause) => new ReadModelError({ operation: "open", cause })
        }),
        (db) => Effect.sync(() => db.close())
      )
      const upsert = db.prepare(`INSERT OR REPLACE INTO entities VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
      const keep = db.prepare(`INSERT OR REPLACE INTO entity_snapshots VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
      const select = db.prepare(`SELECT * FROM entities WHERE type = ? AND id = ?`)
      const setCheckpoint = db.prepare(`INSERT OR REPLACE INTO checkpoints VALUES ('entities', ?)`)
      const getCheckpoint = db.prepare(`SELECT position FROM checkpoints WHERE name = 'entities'`)
      const firstPage = db.prepare(`SELECT * FROM entities WHERE type = ? AND deleted = 0 ORDER BY length(id), id LIMIT ?`)
      const nextPage = db.prepare(
        `SELECT * FROM entities WHERE type = ? AND deleted = 0 AND (length(id), id) > (length(?), ?) ORDER BY length(id), id LIMIT ?`
      )
      const latestSnapshot = db.prepare(`SELECT * FROM entity_snapshots WHERE type = ? AND id = ? ORDER BY revision DESC LIMIT 1`)
      const snapshotBefore = db.prepare(
        `SELECT * FROM entity_snapshots WHERE type = ? AND id = ? AND updated_at <= ? ORDER BY revision DESC LIMIT 1`
      )

      const use = <A>(operation: string, f: () => A) =>
        Effect.try({ try: f, catch: (cause) => new ReadModelError({ operation, cause }) })

      const rowOf = (type: string, id: string) => {
        const row = select.get(type, id) as Row | undefined
        return row === undefined ? undefined : fromRow(row)
      }

      return EntityReadModel.of({
        apply: (events: ReadonlyArray<EventEnvelope>) =>
          use("apply", () => {
            if (events.length === 0) return
            const rows = new Map<string, EntitySnapshot | undefined>()
            db.exec("BEGIN IMMEDIATE")
            try {
              for (const event of events) {
                const key = `${event.entityType}-${event.entityId}`
                const current = rows.has(key) ? rows.get(key) : rowOf(event.entityType, event.entityId)
                const next = projectEvent(current, event)
                if (next === undefined) continue
                rows.set(key, next)
                upsert.run(...toParams(next))
                if (keepsSnapshot(next, every)) keep.run(...toParams(next))
              }
              setCheckpoint.run(events[events.length - 1]!.position)
              db.exec("COMMIT")
            } catch (error) {
              db.exec("ROLLBACK")
              throw error
            }
          }),
        checkpoint: use("checkpoint", () => (getCheckpoint.get() as { position: number } | undefined)?.position),
        reset: use("reset", () => db.exec("DELETE FROM entities; DELETE FROM entity_snapshots; DELETE FROM checkpoints;")),
        get: (type, id) => use("get", () => Option.fromNullishOr(rowOf(type, id))),
        list: (type, { limit, after }) =>
          use("list", () => {
            const rows = (after === undefined ? firstPage.all(type, limit + 1) : nextPage.all(type, after, after, limit + 1)) as unknown as Array<Row>
            return { items: rows.slice(0, limit).map(fromRow), more: rows.length > limit }
          }),
        snapshotAtOrBefore: (type, id, asOf) =>
          use("snapshotAtOrBefore", () => {
            const row = (asOf === undefined ? latestSnapshot.get(type, id) : snapshotBefore.get(type, id, asOf)) as Row | undefined
            return Option.map(Option.fromNullishOr(row), fromRow)
          })
      })
    })
  )
