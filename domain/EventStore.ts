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

/** The stream was not at the expected revision; `actual` is where it is (`"no_stream"` when absent). */
export class WrongExpectedRevision extends Schema.TaggedError<WrongExpectedRevision>()("WrongExpectedRevision", {
  stream: Schema.String,
  expected: ExpectedRevision,
  actual: Schema.Union([Schema.Int, Schema.Literal("no_stream")])
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

export class EventStore extends Context.Service<EventStore, {
  /** Appends atomically, all or nothing, checking `expectedRevision` first. An empty list only checks. */
  readonly appendToStream: (
    stream: string,
    events: ReadonlyArray<EventData>,
    expectedRevision: ExpectedRevision
  ) => Effect.Effect<AppendResult, WrongExpectedRevision | EventStoreError>
  /** Reads one stream; an absent stream reads as empty. */
  readonly readStream: (stream: string, options?: ReadStreamOptions) => Effect.Effect<ReadonlyArray<RecordedEvent>, EventStoreError>
  /** Reads the global commit order. */
  readonly readAll: (options?: ReadAllOptions) => Effect.Effect<ReadonlyArray<RecordedEvent>, EventStoreError>
  /** Catches up from a checkpoint in global order, then follows new appends live; never ends by itself. */
  readonly subscribeToAll: (options?: SubscribeToAllOptions) => Stream.Stream<RecordedEvent, EventStoreError>
  /** Position of the newest event, or undefined when the store is empty (for lag). */
  readonly headPosition: Effect.Effect<number | undefined, EventStoreError>
}>()("tributary/EventStore") {}
