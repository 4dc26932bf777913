/**
 * The app-event rollups' SQLite file (`DATA_DIR/rollups.db`; what they mean: projections/events/rollups.ts):
 * its tables and how a connection opens it. Written by the rollups' writer thread
 * (rollupsWriterThread.ts), read by the metrics queries (rollupsReaderThread.ts), and by the trend alerts, which also
 * keep their state and what they raised here (infra/events/trendAlerts.ts). Tables:
 * - `rollup_checkpoints`: per stream, its last sequence applied (moved in each batch's transaction);
 * - `rollup_tiers`: how far back rows are rolled into hours (`minutes`: no minute rows below it) and
 *   into days (`hours`), by the compaction (RollupTiers in projections/events/rollupBuckets.ts);
 * - `dim_sets`: each combination of (app, dimension values) seen, as a small integer, so fact rows are
 *   a few integers and a query's filters are one lookup of the app's sets; found by a digest of the
 *   combination (`rowKey`), its values kept once, in their columns;
 * - `devices`: (app, device id) → a small integer, for the presence rows, found by a digest (the id itself is not kept);
 * - `dim_set_days`: per app and UTC day the sets were added, how many and the bytes of their values (RollupLimits);
 * - `custom_keys`: (app, custom event name, prop; '' for the name itself) → a small integer;
 * - `rollup_events`, `rollup_devices` (one row per set, minute and device: exact distinct counts),
 *   `rollup_sessions` (by start minute: count, total seconds, a length histogram), `custom_events`
 *   (per custom event name), `custom_totals` (per name and numeric prop: its sum);
 * - `intake_minutes`, `intake_latency` (per app and server minute of receipt: events, and a log-scale
 *   histogram of intake latency), the series trend alerts watch, and `trend_states`, `alerts`.
 * Loaded by the writer thread too: only erasable TypeScript and `.ts` imports.
 */
import { createHash } from "node:crypto"
import { DatabaseSync } from "node:sqlite"
import { dimensions } from "../../domain/events/dimensions.ts"
import { sessionLengthBounds, type TierFloors } from "../../projections/events/rollupBuckets.ts"
import { execOnOpen } from "../sqliteOpen.ts"

const dimensionColumns = dimensions.map((d) => `"${d}" TEXT`).join(", ")
/** `rollup_sessions`' length histogram: one column per bound of sessionLengthBounds, and one above them all */
export const lengthColumnNames = [...sessionLengthBounds, null].map((_, i) => `b${i}`)
const lengthColumns = lengthColumnNames.map((c) => `${c} INTEGER NOT NULL`)

/**
 * The tables of rows per bucket, dimension set and what else keys them, and the columns summed when rows
 * are rolled into a wider bucket (none: presence rows, kept once).
 */
export const bucketTables: ReadonlyArray<{ readonly table: string; readonly keys: ReadonlyArray<string>; readonly sums: ReadonlyArray<string> }> = [
  { table: "rollup_events", keys: [], sums: ["events"] },
  { table: "rollup_devices", keys: ["device"], sums: [] },
  { table: "rollup_sessions", keys: [], sums: ["sessions", "seconds", ...lengthColumnNames] },
  { table: "custom_events", keys: ["key"], sums: ["events"] },
  { table: "custom_totals", keys: ["key"], sums: ["total"] }
]

const TABLES = `
  CREATE TABLE IF NOT EXISTS rollup_checkpoints (stream TEXT PRIMARY KEY, seq INTEGER NOT NULL);
  CREATE TABLE IF NOT EXISTS rollup_tiers (tier TEXT PRIMARY KEY, below INTEGER NOT NULL);
  CREATE TABLE IF NOT EXISTS dim_sets (id INTEGER PRIMARY KEY, key BLOB NOT NULL UNIQUE, app TEXT NOT NULL, ${dimensionColumns});
  CREATE INDEX IF NOT EXISTS dim_sets_by_app ON dim_sets (app);
  CREATE TABLE IF NOT EXISTS devices (id INTEGER PRIMARY KEY, key BLOB NOT NULL UNIQUE);
  CREATE TABLE IF NOT EXISTS rollup_events (dim_set INTEGER NOT NULL, minute INTEGER NOT NULL, events INTEGER NOT NULL,
    PRIMARY KEY (dim_set, minute)) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS rollup_devices (dim_set INTEGER NOT NULL, minute INTEGER NOT NULL, device INTEGER NOT NULL,
    PRIMARY KEY (dim_set, minute, device)) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS rollup_sessions (dim_set INTEGER NOT NULL, minute INTEGER NOT NULL, sessions INTEGER NOT NULL,
    seconds REAL NOT NULL, ${lengthColumns.join(", ")}, PRIMARY KEY (dim_set, minute)) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS dim_set_days (app TEXT NOT NULL, day INTEGER NOT NULL, added INTEGER NOT NULL, bytes INTEGER NOT NULL,
    PRIMARY KEY (app, day)) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS custom_keys (id INTEGER PRIMARY KEY, app TEXT NOT NULL, name TEXT NOT NULL, prop TEXT NOT NULL,
    UNIQUE (app, name, prop));
  CREATE TABLE IF NOT EXISTS custom_events (dim_set INTEGER NOT NULL, minute INTEGER NOT NULL, key INTEGER NOT NULL, events INTEGER NOT NULL,
    PRIMARY KEY (dim_set, minute, key)) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS custom_totals (dim_set INTEGER NOT NULL, minute INTEGER NOT NULL, key INTEGER NOT NULL,
    total REAL NOT NULL, PRIMARY KEY (dim_set, minute, key)) WITHOUT ROWID;
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

/** The compaction's marks (rollupsCompaction.ts): begun (`minutes`, `hours`) and done. */
export type TierMark = "minutes" | "hours" | "minutes-done" | "hours-done"

/** Below every minute there is: the marks of a file never compacted. */
export const noMark = Number.MIN_SAFE_INTEGER

/** The marks in `rollup_tiers` on a connection, its statements prepared once. */
export const tierMarks = (db: DatabaseSync) => {
  const read = db.prepare("SELECT below FROM rollup_tiers WHERE tier = ?")
  const raise = db.prepare("INSERT INTO rollup_tiers VALUES (?, ?) ON CONFLICT DO UPDATE SET below = MAX(below, excluded.below)")
  const of = (tier: TierMark): number => (read.get(tier) as { below: number } | undefined)?.below ?? noMark
  return {
    of,
    /** moves a mark on, never back (a horizon raised since keeps what may be rolled) */
    raise: (tier: TierMark, below: number): void => void raise.run(tier, below),
    /** how far rows may be rolled up already: no minute rows below `minutes`, no hour rows below `hours` */
    begun: (): TierFloors => ({ minutes: of("minutes"), hours: of("hours") })
  }
}
export type TierMarks = ReturnType<typeof tierMarks>

/**
 * The key a text is found by in `dim_sets` and `devices`: the first 16 bytes of its SHA-256. Before stop
 * 27 the text itself, kept twice (the row and its index) beside the values: a combination of long values
 * cost 10.8 KB (stop 27's outside attack: 540 MB a day from one SDK key), a long device id 888 B.
 */
export const rowKey = (text: string): Uint8Array => createHash("sha256").update(text).digest().subarray(0, 16)

/**
 * What files written before stop 27 hold differently, moved once (PRAGMA user_version 0 → 1) by
 * whichever connection opens the file first (inside one transaction, so the others find it done):
 * custom events kept by name, and their sums by name and prop, as text in each row (`rollup_custom`,
 * `rollup_custom_sums`), go to `custom_keys`, `custom_events` and `custom_totals`; the keys of
 * `dim_sets` and `devices` become digests (rowKey).
 */
const migrate = (db: DatabaseSync): void => {
  execOnOpen(db, "BEGIN IMMEDIATE")
  try {
    if ((db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version < 1) {
      if (db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'rollup_custom'").get() !== undefined) {
        db.exec(`
          INSERT OR IGNORE INTO custom_keys (app, name, prop)
            SELECT DISTINCT d.app, r.name, '' FROM rollup_custom r JOIN dim_sets d ON d.id = r.dim_set;
          INSERT OR IGNORE INTO custom_keys (app, name, prop)
            SELECT DISTINCT d.app, r.name, r.prop FROM rollup_custom_sums r JOIN dim_sets d ON d.id = r.dim_set;
          INSERT INTO custom_events SELECT r.dim_set, r.minute, k.id, r.events FROM rollup_custom r
            JOIN dim_sets d ON d.id = r.dim_set JOIN custom_keys k ON k.app = d.app AND k.name = r.name AND k.prop = '';
          INSERT INTO custom_totals SELECT r.dim_set, r.minute, k.id, r.total FROM rollup_custom_sums r
            JOIN dim_sets d ON d.id = r.dim_set JOIN custom_keys k ON k.app = d.app AND k.name = r.name AND k.prop = r.prop;
          DROP TABLE rollup_custom;
          DROP TABLE rollup_custom_sums;`)
      }
      db.function("row_key", { deterministic: true }, (text) => rowKey(String(text)))
      db.exec(`
        UPDATE dim_sets SET key = row_key(key) WHERE typeof(key) = 'text';
        UPDATE devices SET key = row_key(key) WHERE typeof(key) = 'text';
        PRAGMA user_version = 1;`)
    }
    db.exec("COMMIT")
  } catch (error) {
    db.exec("ROLLBACK")
    throw error
  }
}

/** A connection to the rollups file at `path`, its tables created (WAL: readers never wait for the writer). */
export const openRollupsFile = (path: string): DatabaseSync => {
  const db = new DatabaseSync(path, { timeout: 5_000 })
  try {
    execOnOpen(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;")
    execOnOpen(db, TABLES)
    migrate(db)
    return db
  } catch (error) {
    db.close()
    throw error
  }
}
