/** The statements that open a SQLite file several processes share. */
import type { DatabaseSync } from "node:sqlite"

const pause = new Int32Array(new SharedArrayBuffer(4))

/** SQLITE_BUSY, with any of its extended codes (node:sqlite puts the code in `errcode`). */
const isBusy = (error: unknown) =>
  typeof error === "object" && error !== null && (Number((error as { errcode?: unknown }).errcode) & 0xff) === 5

/**
 * Bytes a file's write-ahead log is cut back to once a checkpoint has copied it all and it starts over.
 * Without it a WAL keeps on disk the largest size it ever reached: one that grew while a reader held an
 * old snapshot (devices.db's reached 873 MB while a device pipeline was frozen, stop 25) stayed that
 * size for good. SQLite's automatic checkpoint keeps a WAL near 4 MiB otherwise.
 */
export const walSizeLimitBytes = 64 * 1024 * 1024

/**
 * Runs the opening statements of `db` (switching it to WAL, creating its tables: all idempotent), again
 * after a short pause while they meet SQLITE_BUSY, for at most `withinMs`. The busy timeout does not
 * cover them all: where waiting could deadlock (a connection holding a shared lock that needs a stronger
 * one another process waits for), SQLite answers "database is locked" at once. Two processes starting
 * at the same instant on one DATA_DIR meet exactly that (seen: a platform process failing to start on
 * its credentials file beside another one starting). Then bounds the file's WAL (`walSizeLimitBytes`).
 */
export const execOnOpen = (db: DatabaseSync, sql: string, withinMs = 10_000): void => {
  const started = Date.now()
  for (;;) {
    try {
      db.exec(sql)
      db.exec(`PRAGMA journal_size_limit = ${walSizeLimitBytes}`)
      return
    } catch (error) {
      if (!isBusy(error) || Date.now() - started > withinMs) throw error
      Atomics.wait(pause, 0, 0, 20 + Math.floor(Math.random() * 80)) // a blocking pause: opening is synchronous
    }
  }
}
