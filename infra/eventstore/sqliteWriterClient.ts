/**
 * The main thread's side of the SQLite event store's writer thread (sqliteWriterThread.ts), on the
 * shared SQLite thread client (infra/sqliteThread.ts): one batch at a time, each answered in order.
 */
import { Effect } from "effect"
import { EventStoreError } from "../../domain/EventStore.ts"
import { startSqliteThread } from "../sqliteThread.ts"
import type { CommitAnswer, CommitRequest, WriteRequest, WriterData } from "./sqliteWriterProtocol.ts"

const threadFile = new URL("./sqliteWriterThread.ts", import.meta.url)

/**
 * Starts the writer thread on `data.path` (`opened` tells when it is ready); if it cannot open the
 * file, every commit fails with that cause. Stops it when the scope closes.
 */
export const startWriter = (data: WriterData) =>
  Effect.map(
    startSqliteThread<CommitRequest, CommitAnswer>(threadFile, data, {
      name: "the event store's writer thread",
      failed: (cause) => ({ _tag: "BatchFailed", cause })
    }),
    (thread) => ({
      /** Commits one batch; callers send the next one only after its answer (the store's single writer fiber does). */
      commit: (batch: ReadonlyArray<WriteRequest>, recordedAt: string) => thread.request({ recordedAt, batch }),
      opened: Effect.mapError(thread.opened, (cause) => new EventStoreError({ operation: "open", cause }))
    })
  )
