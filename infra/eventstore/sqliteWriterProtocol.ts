/**
 * The messages between the SQLite event store (main thread) and its writer thread (sqliteWriter.ts).
 * Types only: both sides load this file, the worker under Node's own type stripping.
 */
import type { AppendResult, ExpectedRevision, EventData, RevisionConflict } from "../../domain/EventStore.ts"

/** One caller's append: one stream (`appendToStream`) or several in one all-or-nothing unit (`appendToStreams`). */
export interface WriteRequest {
  readonly appends: ReadonlyArray<{
    readonly stream: string
    readonly events: ReadonlyArray<EventData>
    readonly expected: ExpectedRevision
  }>
}

/** What became of one request of a committed batch. */
export type WriteOutcome =
  | { readonly _tag: "Appended"; readonly results: ReadonlyArray<AppendResult> }
  | { readonly _tag: "Conflict"; readonly conflicts: ReadonlyArray<RevisionConflict> }
  | { readonly _tag: "Failed"; readonly cause: unknown }

/** Main thread → writer. A batch is everything that was pending: one transaction. */
export type ToWriter =
  | { readonly _tag: "Commit"; readonly recordedAt: string; readonly batch: ReadonlyArray<WriteRequest> }
  | { readonly _tag: "Close" }

/** Writer → main thread: one `Ready`/`OpenFailed` at start, then one answer per `Commit`, in order. */
export type FromWriter =
  | { readonly _tag: "Ready" }
  | { readonly _tag: "OpenFailed"; readonly cause: unknown }
  /** `outcomes[i]` answers `batch[i]`; `written` counts the events the transaction committed */
  | { readonly _tag: "Committed"; readonly outcomes: ReadonlyArray<WriteOutcome>; readonly written: number }
  /** the transaction itself failed (BEGIN, COMMIT, a rollback by SQLite): every request in it failed */
  | { readonly _tag: "BatchFailed"; readonly cause: unknown }

export interface WriterData {
  readonly path: string
  /** ms to wait for another connection's write lock before failing (SQLite busy_timeout) */
  readonly busyTimeout: number
}
