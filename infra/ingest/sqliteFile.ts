/** A SQLite file that several processes on one DATA_DIR share, and that no other local user may read. */
import { mkdirSync, writeFileSync } from "node:fs"
import { dirname } from "node:path"
import { DatabaseSync } from "node:sqlite"
import { execOnOpen } from "../sqliteOpen.ts"

/** Opens `path` (created 0600 when missing): WAL, so readers never wait for the writer, and fsynced at every commit. */
export const openSharedSqlite = (path: string): DatabaseSync => {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
  // Created here with its mode, so SQLite's -wal and -shm files, which copy it, are private too.
  writeFileSync(path, "", { flag: "a", mode: 0o600 })
  // timeout: the busy wait from the first statement on (switching to WAL takes a lock another process starting at the same instant may hold)
  const db = new DatabaseSync(path, { timeout: 5_000 })
  execOnOpen(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000")
  return db
}
