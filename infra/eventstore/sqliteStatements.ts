/** The SQLite event store's table and statements: one table, global order = position, one row per event. */
import type { DatabaseSync } from "node:sqlite"

export const schema = `
CREATE TABLE IF NOT EXISTS events (
  position    INTEGER PRIMARY KEY,
  event_id    TEXT NOT NULL UNIQUE,
  stream      TEXT NOT NULL,
  revision    INTEGER NOT NULL,
  type        TEXT NOT NULL,
  data        TEXT NOT NULL,
  metadata    TEXT NOT NULL,
  recorded_at TEXT NOT NULL,
  UNIQUE (stream, revision)
) STRICT;
`
const columns = "position, event_id, stream, revision, type, data, metadata, recorded_at"

/** Every statement the store runs, prepared once per connection. */
export const prepare = (db: DatabaseSync) => ({
  begin: db.prepare("BEGIN IMMEDIATE"),
  dataVersion: db.prepare("PRAGMA data_version"),
  commit: db.prepare("COMMIT"),
  rollback: db.prepare("ROLLBACK"),
  savepoint: db.prepare("SAVEPOINT append"),
  releaseSavepoint: db.prepare("RELEASE append"),
  rollbackToSavepoint: db.prepare("ROLLBACK TO append"),
  insert: db.prepare(
    "INSERT INTO events (event_id, stream, revision, type, data, metadata, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
  ),
  streamHead: db.prepare("SELECT revision, position FROM events WHERE stream = ? ORDER BY revision DESC LIMIT 1"),
  byEventId: db.prepare("SELECT stream, revision FROM events WHERE event_id = ?"),
  streamForwards: db.prepare(`SELECT ${columns} FROM events WHERE stream = ? AND revision >= ? ORDER BY revision LIMIT ?`),
  streamBackwards: db.prepare(
    `SELECT ${columns} FROM events WHERE stream = ? AND revision <= ? ORDER BY revision DESC LIMIT ?`
  ),
  allForwards: db.prepare(`SELECT ${columns} FROM events WHERE position >= ? ORDER BY position LIMIT ?`),
  allBackwards: db.prepare(`SELECT ${columns} FROM events WHERE position <= ? ORDER BY position DESC LIMIT ?`),
  head: db.prepare("SELECT max(position) AS position FROM events"),
  lastRecordedAt: db.prepare("SELECT recorded_at FROM events ORDER BY position DESC LIMIT 1")
})

