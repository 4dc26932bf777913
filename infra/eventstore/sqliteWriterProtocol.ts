/**
 * The messages between the SQLite event store (main thread) and its writer thread (sqliteWriter.ts);
 * both sides load this file, the worker under Node's own type stripping.
 *
 * Requests cross the thread boundary as flat arrays of strings, not event objects: structured clone
 * of 10,000 event objects took longer than committing them (about 85 ms against 80 ms), while flat
 * strings clone several times faster, and the JSON text of data and metadata is what SQLite stores
 * anyway. Results come back as one Float64Array per request.
 */
import type { EventData, ExpectedRevision, RevisionConflict } from "../../domain/EventStore.ts"

/** One caller's append: one stream (`appendToStream`) or several in one all-or-nothing unit (`appendToStreams`). */
export interface WriteRequest {
  /** per stream, `streamFields` entries: its name, the expected revision, how many events it gets */
  readonly streams: ReadonlyArray<string | number>
  /** per event, in the order of the streams, `eventFields` entries: eventId, type, data JSON, metadata JSON */
  readonly events: ReadonlyArray<string>
}
export const streamFields = 3
export const eventFields = 4

/** Flattens appends for the writer thread, serialising data and metadata to the JSON stored. */
export const encodeRequest = (
  appends: ReadonlyArray<{ readonly stream: string; readonly events: ReadonlyArray<EventData>; readonly expected: ExpectedRevision }>
): WriteRequest => {
  const streams: Array<string | number> = []
  const events: Array<string> = []
  for (const append of appends) {
    streams.push(append.stream, append.expected, append.events.length)
    for (const event of append.events) {
      events.push(event.eventId, event.type, JSON.stringify(event.data) ?? "null", JSON.stringify(event.metadata) ?? "null")
    }
  }
  return { streams, events }
}

/** What became of one request of a committed batch. */
export type WriteOutcome =
  /** per stream, in the order given: next revision, position */
  | { readonly _tag: "Appended"; readonly results: Float64Array }
  | { readonly _tag: "Conflict"; readonly conflicts: ReadonlyArray<RevisionConflict> }
  | { readonly _tag: "Failed"; readonly cause: unknown }

/**
 * Main thread → writer: a batch is everything that was pending, one transaction. `recordedAt`: the
 * sender's wall clock; the writer records it, or the newest recordedAt stored if that is later.
 */
export interface CommitRequest {
  readonly recordedAt: string
  readonly batch: ReadonlyArray<WriteRequest>
}

/** Writer → main thread, one per request (infra/sqliteThreadServe.ts carries them). */
export type CommitAnswer =
  /** `outcomes[i]` answers `batch[i]`; `written` counts the events the transaction committed */
  | { readonly _tag: "Committed"; readonly outcomes: ReadonlyArray<WriteOutcome>; readonly written: number }
  /** the transaction itself failed (BEGIN, COMMIT, a rollback by SQLite), or the thread died: every request in it failed */
  | { readonly _tag: "BatchFailed"; readonly cause: unknown }

export interface WriterData {
  readonly path: string
  /** ms to wait for another connection's write lock before failing (SQLite busy_timeout) */
  readonly busyTimeout: number
}
