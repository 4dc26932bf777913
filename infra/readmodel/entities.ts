/**
 * The `entities` projection on SQLite: every registered entity type's (but batch-applied ones') current state (table
 * `entities`) and, every `snapshotEvery` revisions (the decider's own, or the read model's default),
 * a kept snapshot (table `entity_snapshots`), both with the decider's state encoded so that folding can
 * go on from them. Declared as data (projections/Projection.ts); its SQL lives here.
 */
import type { DatabaseSync } from "node:sqlite"
import type { DeciderRegistry } from "../../domain/DeciderRegistry.ts"
import type { EventEnvelope } from "../../domain/envelope.ts"
import type { KeptSnapshot } from "../../domain/snapshot.ts"
import type { Projection } from "../../projections/Projection.ts"
import { keepsSnapshot, projectEvent } from "../../projections/projectEntity.ts"
import { ENTITY_COLUMNS, fromRow, type Row, toParams } from "./rows.ts"

const TABLES = `
  CREATE TABLE IF NOT EXISTS entities (${ENTITY_COLUMNS}, PRIMARY KEY (type, id)) WITHOUT ROWID;
  -- ids are 64-bit unsigned decimal strings: numeric order is (length, text)
  CREATE INDEX IF NOT EXISTS entities_by_type ON entities (type, deleted, length(id), id);
  CREATE TABLE IF NOT EXISTS entity_snapshots (${ENTITY_COLUMNS}, PRIMARY KEY (type, id, revision)) WITHOUT ROWID;
`

export const entitiesProjection = (options: { readonly registry: DeciderRegistry; readonly snapshotEvery: number }): Projection<DatabaseSync> => ({
  name: "entities",
  init: (db, { rebuild }) => {
    if (rebuild) db.exec("DROP TABLE IF EXISTS entities; DROP TABLE IF EXISTS entity_snapshots;")
    db.exec(TABLES)
  },
  // Batch-applied types (user profiles: tens of millions) are read from the event store only: a row
  // and kept snapshots per profile would cost the read model more than the profiles' own commit.
  canHandle: (event) => {
    const kind = options.registry.get(event.entityType)
    return kind !== undefined && kind.decider.applies !== "batch"
  },
  evolve: (db, events: ReadonlyArray<EventEnvelope>) => {
    const select = db.prepare(`SELECT * FROM entities WHERE type = ? AND id = ?`)
    const upsert = db.prepare(`INSERT OR REPLACE INTO entities VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
    const keep = db.prepare(`INSERT OR REPLACE INTO entity_snapshots VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
    const rows = new Map<string, KeptSnapshot | undefined>()
    const skipped: Array<string> = []
    for (const event of events) {
      const kind = options.registry.get(event.entityType)!
      const key = `${event.entityType}-${event.entityId}`
      const current = rows.has(key) ? rows.get(key) : (() => {
        const row = select.get(event.entityType, event.entityId) as Row | undefined
        return row === undefined ? undefined : fromRow(row)
      })()
      const projected = projectEvent(kind, current, event)
      if (projected._tag === "Unknown") skipped.push(event.type)
      if (projected._tag !== "Row") continue
      const next = projected.row
      rows.set(key, next)
      upsert.run(...toParams(next))
      if (keepsSnapshot(next, kind.decider.snapshotEvery ?? options.snapshotEvery)) keep.run(...toParams(next))
    }
    return { skipped }
  }
})
