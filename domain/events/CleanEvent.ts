/**
 * What the device shards produce (issue 8): app events after exact dedupe and enrichment, on
 * EVENTS_CLEAN (`events.clean.<app>`, in CleanBatches), and sessions, on SESSIONS (`sessions.<app>`).
 * Consumers follow these subjects; the rollups (projections/events/) are built from them. Public:
 * consumers code against these fields.
 */
import { Schema } from "effect"
import { groupsBySize } from "../groupsBySize.ts"
import { Uint64String } from "../ids.ts"
import { IsoDateTime } from "../isoDateTime.ts"
import { DeviceId, Dims, EventType, Props } from "./SdkEvent.ts"

/** Dimensions the platform adds from metadata (the app entity, an ad event's campaign). */
export const EnrichedDims = Schema.Struct({
  publisher: Schema.optionalKey(Schema.String),
  category: Schema.optionalKey(Schema.String),
  /** an ad event's campaign's advertiser */
  advertiserId: Schema.optionalKey(Uint64String)
}).annotate({ identifier: "EnrichedDims" })

/** A deduplicated, enriched event. Its `dims` hold the SDK's dimensions and the enriched ones. */
export const CleanEvent = Schema.Struct({
  app: Uint64String,
  deviceId: DeviceId,
  seq: Schema.Int,
  time: IsoDateTime,
  type: EventType,
  name: Schema.optionalKey(Schema.String),
  props: Schema.optionalKey(Props),
  campaignId: Schema.optionalKey(Uint64String),
  creativeId: Schema.optionalKey(Schema.String),
  dims: Schema.Struct({ ...Dims.fields, ...EnrichedDims.fields }),
  /** the app's name, from its entity (not a dimension: it is the app) */
  appName: Schema.optionalKey(Schema.String),
  /** when the intake received the batch (RFC 3339, server clock) */
  receivedAt: IsoDateTime,
  /** the session this event belongs to (by device time) */
  sessionId: Schema.optionalKey(Schema.String)
}).annotate({ identifier: "CleanEvent" })
export type CleanEvent = typeof CleanEvent.Type

/**
 * An EVENTS_CLEAN message: clean events of one app, in the order its device pipeline kept them, those
 * of one commit together (a few hundred KiB at most: `cleanBatchMaxChars`). One message per event cost
 * nats-server and the platform 45 µs of CPU an event, a batch 5.6 (bench/cleanStreamCost.ts): the former
 * was half the budget of the whole pipeline. Messages written before this shape hold one CleanEvent each, and are still read.
 */
export const CleanBatch = Schema.Struct({
  app: Uint64String,
  events: Schema.Array(CleanEvent)
}).annotate({ identifier: "CleanBatch" })
export type CleanBatch = typeof CleanBatch.Type

/** What an EVENTS_CLEAN message may hold: a batch, or (written before batches) one event. */
export const CleanMessage = Schema.Union([CleanBatch, CleanEvent])
export type CleanMessage = typeof CleanMessage.Type

/** The mark of an EVENTS_CLEAN message the device pipeline wrote (domain/checked.ts): a change of what CleanBatch accepts bumps it. */
export const cleanBatchMark = "CleanBatch/1"

/** The clean events of a message, of either shape. */
export const cleanEventsOf = (message: CleanMessage): ReadonlyArray<CleanEvent> => ("events" in message ? message.events : [message])

/** Characters of clean events' JSON in one CleanBatch at most. */
export const cleanBatchMaxChars = 256 * 1024

/**
 * The CleanBatch bodies of `app`'s clean events, given as their JSON: as few as fit, each at most
 * `maxChars` (an event longer than that alone is a batch of its own), in order.
 */
export const cleanBatchBodies = (app: string, events: ReadonlyArray<string>, maxChars = cleanBatchMaxChars): Array<string> => {
  const head = `{"app":${JSON.stringify(app)},"events":[`
  return groupsBySize(events, (event) => event.length + 1, maxChars).map((batch) => `${head}${batch.join(",")}]}`)
}

/** A session ended (a close, an inactivity gap in device time, or the inactivity reminder). */
export const SessionEnded = Schema.Struct({
  app: Uint64String,
  deviceId: DeviceId,
  sessionId: Schema.String,
  /** device time of its first event */
  start: IsoDateTime,
  /** seconds from its first event to its last (or to its close) */
  durationSeconds: Schema.Finite,
  /** events in it, by type */
  events: Schema.Record(Schema.String, Schema.Int),
  /** why it ended */
  endedBy: Schema.Literals(["close", "inactivity", "reminder"]),
  /** the session's dimensions (of its first event), so sessions group like events */
  dims: Schema.Struct({ ...Dims.fields, ...EnrichedDims.fields })
}).annotate({ identifier: "SessionEnded" })
export type SessionEnded = typeof SessionEnded.Type

/** The mark of a SESSIONS message the device pipeline wrote (domain/checked.ts): a change of what SessionEnded accepts bumps it. */
export const sessionEndedMark = "SessionEnded/1"
