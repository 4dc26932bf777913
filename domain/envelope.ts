/**
 * The event envelope: the contract consumers of HISTORY read (DESIGN.md, Contracts). It joins what
 * the store records (id, revision, position, time) with what the writer put in the metadata.
 */
import { Option, Schema } from "effect"
import type { RecordedEvent } from "./EventStore.ts"

/** Stored with every event; names the entity and the command that caused it. */
export const EventMetadata = Schema.Struct({
  entityType: Schema.String,
  entityId: Schema.String,
  commandId: Schema.String,
  correlationId: Schema.String,
  causationId: Schema.String,
  /** fingerprint of the command's request, to tell a retry from a reused command id */
  commandFingerprint: Schema.optionalKey(Schema.String)
})
export type EventMetadata = typeof EventMetadata.Type

export const EventEnvelope = Schema.Struct({
  eventId: Schema.String,
  type: Schema.String,
  entityType: Schema.String,
  entityId: Schema.String,
  revision: Schema.Int,
  position: Schema.Int,
  recordedAt: Schema.String,
  commandId: Schema.String,
  correlationId: Schema.String,
  causationId: Schema.String,
  data: Schema.Json
}).annotate({ identifier: "EventEnvelope" })
export type EventEnvelope = typeof EventEnvelope.Type

/** Event store stream of an entity: `<type>-<id>` (types never contain "-"). */
export const streamName = (entityType: string, entityId: string): string => `${entityType}-${entityId}`

const decodeMetadata = Schema.decodeUnknownOption(EventMetadata)

/** The envelope of a recorded event; none for an event not written by Tributary (no such metadata). */
export const toEnvelope = (event: RecordedEvent): Option.Option<EventEnvelope> =>
  Option.map(decodeMetadata(event.metadata), (meta) => ({
    eventId: event.eventId,
    type: event.type,
    entityType: meta.entityType,
    entityId: meta.entityId,
    revision: event.revision,
    position: event.position,
    recordedAt: event.recordedAt,
    commandId: meta.commandId,
    correlationId: meta.correlationId,
    causationId: meta.causationId,
    data: event.data
  }))

/** The envelopes of recorded events, leaving out those not written by Tributary. */
export const toEnvelopes = (events: ReadonlyArray<RecordedEvent>): Array<EventEnvelope> =>
  events.flatMap((event) => Option.toArray(toEnvelope(event)))
