/**
 * The `delivery-packages` projection's rule, pure (its SQL in infra/delivery/packagesSqlite.ts): from
 * the event store's global order it follows (a) which profiles are members of which segments — the
 * rule of the segment read model (projections/ingest/segments.ts: `changesOf`, `transition`), reused —
 * and (b) the destination entities' fields. A profile joining a segment is an `add` for every
 * destination taking it, leaving it (the last membership removed or expired) a `remove`; a second
 * partner's add, a renewal, or one of two partners' removes sends nothing. A destination that starts
 * taking a segment (created, or the segment added) gets a refresh of that segment's members at that
 * point of history, so it misses nothing that existed before.
 */
import { Context, Effect, Option, Schema } from "effect"
import { streamName } from "../../domain/envelope.ts"
import { EventStore } from "../../domain/EventStore.ts"
import type { Chunk } from "../../domain/delivery/Chunk.ts"
import type { Backlog } from "../../domain/delivery/DeliveryBacklog.ts"
import type { EntityNotFound } from "../../domain/entity.ts"
import type { ReadModelError } from "../ReadModelError.ts"
import { applyMergePatch } from "../../domain/mergePatch.ts"
import type { EventEnvelope } from "../../domain/envelope.ts"
import type { DestinationTargets } from "../../domain/delivery/packaging.ts"
import { canHandle as isMembershipEvent, changesOf, transition } from "../ingest/segments.ts"

export const packagesProjectionName = "delivery-packages"

/** The entity type of destinations (issue 9). */
export const destinationType = "destination"

const destinationEvents = new Set(["EntityCreated", "EntityUpdated", "EntityDeleted"])

export const isDestinationEvent = (event: EventEnvelope): boolean => event.entityType === destinationType && destinationEvents.has(event.type)

/**
 * The revision of the destination's last event that packaging applies (its fields' changes); none when
 * it has none. Read from the event store, backwards: for a destination whose other events packaging
 * skipped before stop 29 (since, it records the revision of every destination event it sees).
 */
export const lastPackagedEvent = (destination: string) =>
  Effect.gen(function*() {
    const store = yield* EventStore
    const page = 64
    let from: number | undefined
    for (;;) {
      const events = yield* store.readStream(streamName(destinationType, destination), { direction: "backwards", maxCount: page, ...(from === undefined ? {} : { fromRevision: from }) })
      const found = events.find((event) => destinationEvents.has(event.type))
      if (found !== undefined) return Option.some(found.revision)
      if (events.length < page) return Option.none<number>()
      from = events[events.length - 1]!.revision - 1
    }
  })

/**
 * Membership events, and every event of a destination: those of its other commands (secrets changed, a
 * dead letter discarded) change nothing packaged, but their revision says packaging has seen them.
 */
export const canHandle = (event: EventEnvelope): boolean => isMembershipEvent(event) || event.entityType === destinationType

/** A profile joined (`add`) or left (`remove`) a segment, at `time` (the record's time; an expiry's instant). */
export interface MemberChange {
  readonly segmentId: string
  readonly op: "add" | "remove"
  readonly time: string
}

const Times = Schema.Struct({
  memberships: Schema.Array(Schema.Struct({ time: Schema.optionalKey(Schema.String), expiresAt: Schema.optionalKey(Schema.String) }))
})
const decodeTimes = Schema.decodeUnknownOption(Times)

/**
 * The member changes of a profile event, given the partners whose membership of each segment is present
 * (`held`, read) and updating them (`hold`, written); undefined when the event does not decode.
 */
export const memberChanges = (
  event: EventEnvelope,
  held: (segmentId: string) => ReadonlyArray<string>,
  hold: (segmentId: string, partners: ReadonlyArray<string>) => void
): ReadonlyArray<MemberChange> | undefined => {
  const changes = changesOf(event)
  if (changes === undefined) return undefined
  const times = decodeTimes(event.data)
  const out: Array<MemberChange> = []
  changes.forEach(({ segmentId, partner, change }, i) => {
    const partners = held(segmentId)
    const present = partners.includes(partner)
    const moved = transition(change, present, partners.length > (present ? 1 : 0))
    if (moved.present === undefined) return // a renewal, or the end of a membership that is not there
    hold(segmentId, moved.present ? [...partners, partner] : partners.filter((p) => p !== partner))
    if (moved.counted === undefined) return // another partner's membership keeps (or kept) the profile a member
    const membership = times._tag === "Some" ? times.value.memberships[i] : undefined
    const time = (change === "expire" ? membership?.expiresAt : membership?.time) ?? event.recordedAt
    out.push({ segmentId, op: moved.counted === "added" ? "add" : "remove", time })
  })
  return out
}

const FieldsEvent = Schema.Union([
  Schema.Struct({ fields: Schema.Record(Schema.String, Schema.Json) }),
  Schema.Struct({ changes: Schema.Record(Schema.String, Schema.Json) })
])
const decodeFieldsEvent = Schema.decodeUnknownOption(FieldsEvent)

/** A destination's fields after one of its events (null: deleted); undefined when the event does not decode. */
export const destinationFields = (
  before: Schema.JsonObject | null,
  event: EventEnvelope
): Schema.JsonObject | null | undefined => {
  if (event.type === "EntityDeleted") return null
  const decoded = decodeFieldsEvent(event.data)
  if (decoded._tag === "None") return undefined
  const data = decoded.value
  return "fields" in data ? data.fields : applyMergePatch(before ?? {}, data.changes) as Schema.JsonObject
}

/** The segments a destination takes after a change that it did not take before: they get a refresh. */
export const newSegments = (before: DestinationTargets | undefined, after: DestinationTargets | undefined): ReadonlyArray<string> => {
  if (after === undefined) return []
  const had = new Set(before?.segmentIds ?? [])
  return [...new Set(after.segmentIds)].filter((s) => !had.has(s))
}

/**
 * The segments a destination took before a change and takes no more: their members get a `remove` each,
 * so the partner's audience follows the destination's segments both ways. A destination deleted gets
 * nothing (there is no endpoint left to send to).
 */
export const droppedSegments = (before: DestinationTargets | undefined, after: DestinationTargets | undefined): ReadonlyArray<string> => {
  if (before === undefined || after === undefined) return []
  const has = new Set(after.segmentIds)
  return [...new Set(before.segmentIds)].filter((s) => !has.has(s))
}

/** A refresh accepted: its package id and how many records it holds (0 when the segments have no members). */
export const RefreshAccepted = Schema.Struct({
  packageId: Schema.String,
  records: Schema.Int
}).annotate({ identifier: "RefreshAccepted" })
export type RefreshAccepted = typeof RefreshAccepted.Type

/** Packages on request. Declared here; SQLite and the outbox in infra/delivery/. */
export class DeliveryPackages extends Context.Service<DeliveryPackages, {
  /**
   * Writes a refresh package of every current member of the destination's segments, in order with its
   * continuous changes; fails with EntityNotFound when packaging does not know the destination (yet).
   */
  readonly refresh: (destination: string) => Effect.Effect<RefreshAccepted, EntityNotFound | ReadModelError>
  /**
   * Puts chunks in the outbox after everything it holds (a dead letter replayed): they reach DELIVER as
   * its lanes make room, like every package. Straight onto DELIVER, a replay was refused while the lane
   * was full, which is exactly while its destination waits for room on DLQ (found by the outside attack
   * of stop 21: replay and lane waited on each other for good).
   */
  readonly enqueue: (chunks: ReadonlyArray<Chunk>) => Effect.Effect<void, ReadModelError>
  /** What the destination has waiting in the outbox, not yet on DELIVER (held at its lane barrier, say). */
  readonly waiting: (destination: string) => Effect.Effect<Backlog, ReadModelError>
  /**
   * The revision of the destination's last event packaging applied (None: none yet): behind
   * `lastPackagedEvent`, a change of the destination is not packaged yet, and the backlog does not
   * show what it will add.
   */
  readonly packagedRevision: (destination: string) => Effect.Effect<Option.Option<number>, ReadModelError>
  /**
   * Drops what the destination has waiting in the outbox (it was deleted); with `before` (a `nextRow`
   * taken earlier) only what was written before then. Returns what that held.
   */
  readonly drop: (destination: string, before?: number) => Effect.Effect<Backlog, ReadModelError>
  /** The place of the next row written to the outbox, of any destination: a bound for `drop`. */
  readonly nextRow: Effect.Effect<number, ReadModelError>
}>()("tributary/DeliveryPackages") {}
