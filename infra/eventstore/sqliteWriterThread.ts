/**
 * The SQLite event store's writer thread (`node:worker_threads`): it owns the write connection, so
 * the fsync of every commit (synchronous=FULL) and any wait for another process's write lock
 * (busy_timeout) block this thread, never the main thread's event loop (HTTP, NATS, timers).
 *
 * Loaded by Node itself, not by a bundler (vitest does not transform workers): it and everything it
 * imports must run under Node's own type stripping, so only erasable TypeScript and `.ts` imports.
 * It answers `Commit` messages one at a time, in order; the main thread sends the next batch only
 * after the previous answer, so batching happens there (see sqlite.ts).
 */
import { DatabaseSync } from "node:sqlite"
import { workerData } from "node:worker_threads"
import { makeWriter } from "./sqliteWriter.ts"
import type { CommitAnswer, CommitRequest, WriterData } from "./sqliteWriterProtocol.ts"
import { serveSqliteThread } from "../sqliteThreadServe.ts"
import { execOnOpen } from "../sqliteOpen.ts"

const { path, busyTimeout } = workerData as WriterData

serveSqliteThread<CommitRequest, CommitAnswer>(
  // busy_timeout: another process holding the write lock makes us wait rather than fail at once.
  () => new DatabaseSync(path, { timeout: busyTimeout }),
  (db) => {
    // synchronous=FULL: the WAL is fsynced at every commit, so an acknowledged append survives power
    // loss (DESIGN: acknowledged only once on disk). NORMAL would fsync only at checkpoints and could
    // lose the last acknowledged appends; group commit amortises the fsync, and bench/eventStore.ts
    // measures the adapter against raw inserts with the same setting.
    // (the file, WAL mode and the table were made by the store before it started this thread)
    execOnOpen(db, `PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = ${busyTimeout};`)
    const writer = makeWriter(db)
    return (request) => writer.commit(request.batch, request.recordedAt)
  }
)
