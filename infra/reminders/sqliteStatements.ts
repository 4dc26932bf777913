/**
 * The reminders table and its statements. One row per entity; the index leads with the shard, so a
 * scheduler reads only its own shards, then orders by the next attempt (`attempt_at`, which is
 * `due_at` until a failed fire postpones it): finding what is due is an index range scan over the due
 * rows only, and finding the next wake-up is one index seek per shard. The index also holds `due_at`,
 * the setting's `token` and (WITHOUT ROWID) the entity key, so these reads never touch the table itself.
 */
import type { DatabaseSync } from "node:sqlite"

export const schema = `
  CREATE TABLE IF NOT EXISTS reminders (
    entity_type TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    shard INTEGER NOT NULL,
    due_at INTEGER NOT NULL,
    attempt_at INTEGER NOT NULL,
    token INTEGER,
    PRIMARY KEY (entity_type, entity_id)
  ) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS reminders_by_shard_attempt ON reminders (shard, attempt_at, due_at, entity_type, entity_id, token);
`

/**
 * A file from before tokens gets the column (null: its reminders keep their old wake-up ids) and the
 * index with it, so reading what is due still never touches the table.
 */
export const migrate = (db: DatabaseSync) => {
  const hasToken = () => (db.prepare("SELECT name FROM pragma_table_info('reminders')").all() as Array<{ name: string }>).some((c) => c.name === "token")
  if (hasToken()) return
  // looked at again under the write lock: another process opening the file may have just done it
  db.exec("BEGIN IMMEDIATE")
  try {
    if (!hasToken()) {
      db.exec(`ALTER TABLE reminders ADD COLUMN token INTEGER;
        DROP INDEX IF EXISTS reminders_by_shard_attempt;
        CREATE INDEX reminders_by_shard_attempt ON reminders (shard, attempt_at, due_at, entity_type, entity_id, token);`)
    }
    db.exec("COMMIT")
  } catch (error) {
    db.exec("ROLLBACK")
    throw error
  }
}

export const sql = {
  set: `INSERT INTO reminders (entity_type, entity_id, shard, due_at, attempt_at, token) VALUES (?, ?, ?, ?, ?, ?)
    ON CONFLICT (entity_type, entity_id) DO UPDATE
    SET shard = excluded.shard, due_at = excluded.due_at, attempt_at = excluded.attempt_at, token = excluded.token`,
  cancel: `DELETE FROM reminders WHERE entity_type = ? AND entity_id = ?`,
  // `due_at = ? AND token IS ?`: the entity may have set a new reminder since this one was read, for
  // another instant or the same; that one stays.
  fired: `DELETE FROM reminders WHERE entity_type = ? AND entity_id = ? AND due_at = ? AND token IS ?`,
  postpone: `UPDATE reminders SET attempt_at = ? WHERE entity_type = ? AND entity_id = ? AND due_at = ? AND token IS ?`,
  // Ties are broken by the index's own order, so no sort is needed and the order is the same everywhere.
  due: `SELECT entity_type, entity_id, shard, due_at, attempt_at, token FROM reminders
    WHERE shard = ? AND attempt_at <= ? ORDER BY attempt_at, due_at, entity_type, entity_id LIMIT ?`,
  next: `SELECT attempt_at FROM reminders WHERE shard = ? ORDER BY attempt_at LIMIT 1`
} as const

export const prepare = (db: DatabaseSync) => ({
  set: db.prepare(sql.set),
  cancel: db.prepare(sql.cancel),
  fired: db.prepare(sql.fired),
  postpone: db.prepare(sql.postpone),
  due: db.prepare(sql.due),
  next: db.prepare(sql.next),
  begin: db.prepare("BEGIN IMMEDIATE"),
  commit: db.prepare("COMMIT"),
  rollback: db.prepare("ROLLBACK")
})
export type Statements = ReturnType<typeof prepare>
