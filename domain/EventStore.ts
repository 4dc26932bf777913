/**
 * The event store: every entity's ordered history (one stream per entity, `<type>-<id>`) and the
 * global commit order across all streams. Declared here; implemented in infra/eventstore
 * (`layerSqlite`, `layerKurrent`) and checked by one conformance suite (test/infra/eventStoreSuite.ts).
 */
import { Context, Schema } from "effect"
import type { Effect, Stream } from "effect"

/** What an append expects the stream to be at: any state, absent, present, or exactly this revision. */
export const ExpectedRevision = Schema.Union([
  Schema.Literals(["any", "no_stream", "stream_exists"]),
  Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
])
export type ExpectedRevision = typeof ExpectedRevision.Type

/** An event to append. `eventId` is a UUID v7 chosen by the writer, so a retried append is recognisable. */
export const EventData = Schema.Struct({
  eventId: Schema.String,
  type: Schema.String,
  data: Schema.Json,
  metadata: Schema.Json
})
export type EventData = typeof EventData.Type

/** An event as stored: its revision in its stream (0-based) and its position in the global order. */
export const RecordedEvent = Schema.Struct({
  eventId: Schema.String,
  stream: Schema.String,
  type: Schema.String,
  revision: Schema.Int,
  position: Schema.Int,
  recordedAt: Schema.String,
  data: Schema.Json,
  metadata: Schema.Json
})
export type RecordedEvent = typeof RecordedEvent.Type

export const AppendResult = Schema.Struct({
  /** revision of the last event appended */
  nextRevision: Schema.Int,
  /** global position of the last event appended */
  position: Schema.Int
})
export type AppendResult = typeof AppendResult.Type

/** One stream's part of a multi-stream append: its events and the revision it must be at. */
export const StreamAppend = Schema.Struct({
  stream: Schema.String,
  events: Schema.Array(EventData),
  expectedRevision: ExpectedRevision
})
export type StreamAppend = typeof StreamAppend.Type

/** A stream that was not at the expected revision; `actual` is where it is (`"no_stream"` when absent). */
export const RevisionConflict = Schema.Struct({
  stream: Schema.String,
  expected: ExpectedRevision,
  actual: Schema.Union([Schema.Int, Schema.Literal("no_stream")])
})
export type RevisionConflict = typeof RevisionConflict.Type

/** The stream was not at the expected revision; `actual` is where it is (`"no_stream"` when absent). */
export class WrongExpectedRevision extends Schema.TaggedError<WrongExpectedRevision>()(
  "WrongExpectedRevision",
  RevisionConflict.fields
) {}

/**
 * Some streams of a multi-stream append were not at their expected revisions, so nothing was written.
 * `conflicts` names every one of them (in the order given), so a caller re-reads only those and
 * retries the rest.
 */
export class WrongExpectedRevisions extends Schema.TaggedError<WrongExpectedRevisions>()("WrongExpectedRevisions", {
  conflicts: Schema.NonEmptyArray(RevisionConflict)
}) {}

/** The store could not be reached or failed; whether an append took effect is unknown. */
export class EventStoreError extends Schema.TaggedError<EventStoreError>()("EventStoreError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {}

export interface ReadStreamOptions {
  readonly direction?: "forwards" | "backwards"
  /** inclusive; default: the start (forwards) or the end (backwards) */
  readonly fromRevision?: number
  readonly maxCount?: number
}

export interface ReadAllOptions {
  readonly direction?: "forwards" | "backwards"
  /** inclusive; a position previously returned by the store. Default: the start (forwards) or the end (backwards) */
  readonly fromPosition?: number
  readonly maxCount?: number
}

export interface SubscribeToAllOptions {
  /** exclusive: the position of the last event already processed (a checkpoint). Default: from the start. */
  readonly after?: number
}

/** Does a stream whose last revision is `current` (-1 = absent) meet `expected`? */
export const meetsExpectedRevision = (expected: ExpectedRevision, current: number): boolean =>
  expected === "any" ||
  (expected === "no_stream" ? current === -1 : expected === "stream_exists" ? current >= 0 : current === expected)

/**
 * The first stream named twice in a multi-stream append, if any. Each stream may appear once: a caller
 * applying several commands to one entity folds them into one list of events first (the checks of
 * one commit all see the state before it, so a second expectation on the same stream cannot hold).
 */
export const repeatedStream = (appends: ReadonlyArray<StreamAppend>): string | undefined => {
  const seen = new Set<string>()
  for (const { stream } of appends) {
    if (seen.has(stream)) return stream
    seen.add(stream)
  }
  return undefined
}

export class EventStore extends Context.Service<EventStore, {
  /** Appends atomically, all or nothing, checking `expectedRevision` first. An empty list only checks. */
  readonly appendToStream: (
    stream: string,
    events: ReadonlyArray<EventData>,
    expectedRevision: ExpectedRevision
  ) => Effect.Effect<AppendResult, WrongExpectedRevision | EventStoreError>
  /**
   * Appends to many streams in one commit, all or nothing, each checked against its own expected
   * revision; answers one result per stream, in the order given, and the events take global positions
   * in that order. When any stream is not at its expected revision nothing is written and the error
   * lists every such stream. A stream whose events are already stored exactly where this append would
   * put them (a retry, recognised by event ids) counts as appended. Each stream may appear once (a
   * repeated one is a defect); an empty list commits nothing and answers `[]`.
   */
  readonly appendToStreams: (
    appends: ReadonlyArray<StreamAppend>
  ) => Effect.Effect<ReadonlyArray<AppendResult>, WrongExpectedRevisions | EventStoreError>
  /** Reads one stream; an absent stream reads as empty. */
  readonly readStream: (stream: string, options?: ReadStreamOptions) => Effect.Effect<ReadonlyArray<RecordedEvent>, EventStoreError>
  /** Reads the global commit order. */
  readonly readAll: (options?: ReadAllOptions) => Effect.Effect<ReadonlyArray<RecordedEvent>, EventStoreError>
  /** Catches up from a checkpoint in global order, then follows new appends live; never ends by itself. */
  readonly subscribeToAll: (options?: SubscribeToAllOptions) => Stream.Stream<RecordedEvent, EventStoreError>
  /** Position of the newest event, or undefined when the store is empty (for lag). */
  readonly headPosition: Effect.Effect<number | undefined, EventStoreError>
}>()("tributary/EventStore") {}
