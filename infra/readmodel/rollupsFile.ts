/**
 * The app-event rollups' SQLite file (`DATA_DIR/rollups.db`; what they mean: projections/events/rollups.ts):
 * its tables and how a connection opens it. Written by the rollups' writer thread
 * (rollupsWriterThread.ts), read by the metrics queries (rollupsReaderThread.ts), and by the trend alerts, which also
 * keep their state and what they raised here (infra/events/trendAlerts.ts). Tables:
 * - `rollup_checkpoints`: per stream, its last sequence applied (moved in each batch's transaction);
 * - `dim_sets`: each combination of (app, dimension values) seen, as a small integer, so fact rows are
 *   a few integers and a query's filters are one lookup of the app's sets;
 * - `devices`: (app, device id) → a small integer, for the presence rows;
 * - `rollup_events`, `rollup_devices` (one row per set, minute and device: exact distinct counts),
 *   `rollup_sessions` (by start minute: count, total seconds, a length histogram), `rollup_custom`,
 *   `rollup_custom_sums` (per custom event name, and per numeric prop);
 * - `intake_minutes`, `intake_latency` (per app and server minute of receipt: events, and a log-scale
 *   histogram of intake latency), the series trend alerts watch, and `trend_states`, `alerts`.
 * Loaded by the writer thread too: only erasable TypeScript and `.ts` imports.
 */
import { DatabaseSync } from "node:sqlite"
import { dimensions } from "../../domain/events/dimensions.ts"
import { sessionLengthBounds } from "../../projections/events/rollupBuckets.ts"
import { execOnOpen } from "../sqliteOpen.ts"

const dimensionColumns = dimensions.map((d) => `"${d}" TEXT`).join(", ")
/** `rollup_sessions`' length histogram: one column per bound of sessionLengthBounds, and one above them all */
export const lengthColumns = sessionLengthBounds.map((_, i) => `b${i} INTEGER NOT NULL`).concat([`b${sessionLengthBounds.length} INTEGER NOT NULL`])

const TABLES = `
  CREATE TABLE IF NOT EXISTS rollup_checkpoints (stream TEXT PRIMARY KEY, seq INTEGER NOT NULL);
  CREATE TABLE IF NOT EXISTS dim_sets (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, app TEXT NOT NULL, ${dimensionColumns});
  CREATE INDEX IF NOT EXISTS dim_sets_by_app ON dim_sets (app);
  CREATE TABLE IF NOT EXISTS devices (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE);
  CREATE TABLE IF NOT EXISTS rollup_events (dim_set INTEGER NOT NULL, minute INTEGER NOT NULL, events INTEGER NOT NULL,
    PRIMARY KEY (dim_set, minute)) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS rollup_devices (dim_set INTEGER NOT NULL, minute INTEGER NOT NULL, device INTEGER NOT NULL,
    PRIMARY KEY (dim_set, minute, device)) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS rollup_sessions (dim_set INTEGER NOT NULL, minute INTEGER NOT NULL, sessions INTEGER NOT NULL,
    seconds REAL NOT NULL, ${lengthColumns.join(", ")}, PRIMARY KEY (dim_set, minute)) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS rollup_custom (dim_set INTEGER NOT NULL, minute INTEGER NOT NULL, name TEXT NOT NULL, events INTEGER NOT NULL,
    PRIMARY KEY (dim_set, minute, name)) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS rollup_custom_sums (dim_set INTEGER NOT NULL, minute INTEGER NOT NULL, name TEXT NOT NULL, prop TEXT NOT NULL,
    total REAL NOT NULL, PRIMARY KEY (dim_set, minute, name, prop)) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS intake_minutes (app TEXT NOT NULL, minute INTEGER NOT NULL, events INTEGER NOT NULL,
    PRIMARY KEY (app, minute)) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS intake_latency (app TEXT NOT NULL, minute INTEGER NOT NULL, bucket INTEGER NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (app, minute, bucket)) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS trend_states (app TEXT NOT NULL, measure TEXT NOT NULL, minute INTEGER NOT NULL, state TEXT NOT NULL,
    PRIMARY KEY (app, measure)) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS alerts (id INTEGER PRIMARY KEY AUTOINCREMENT, app TEXT NOT NULL, measure TEXT NOT NULL, at TEXT NOT NULL,
    expected REAL NOT NULL, actual REAL NOT NULL, direction TEXT NOT NULL, published INTEGER NOT NULL DEFAULT 0);
  CREATE INDEX IF NOT EXISTS alerts_by_app ON alerts (app, id);
  CREATE INDEX IF NOT EXISTS alerts_to_publish ON alerts (id) WHERE published = 0;
`

/** Intake latency is kept as a histogram with buckets 5% wide: its p50 is within 5% of the exact one. */
const latencyBase = Math.log(1.05)
export const latencyBucket = (millis: number): number => Math.ceil(Math.log(Math.max(millis, 1)) / latencyBase)
/** A bucket's middle (geometric): within 2.5% of any latency in it. */
export const latencyOfBucket = (bucket: number): number => Math.exp((bucket - 0.5) * latencyBase)

/** A connection to the rollups file at `path`, its tables created (WAL: readers never wait for the writer). */
export const openRollupsFile = (path: string): DatabaseSync => {
  const db = new DatabaseSync(path, { timeout: 5_000 })
  try {
    execOnOpen(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;")
    execOnOpen(db, TABLES)
    return db
  } catch (error) {
    db.close()
    throw error
  }
}
