/**
 * The segment read model: for each segment, its members now, the members each partner's memberships
 * hold, and per UTC day (of the event's `recordedAt`) how many profiles joined it, left it by a
 * remove, and left it by expiry. Fed by the `segments` projection (its SQL in infra/readmodel/segments.ts)
 * from the user profile events (domain/ingest/profileEvents.ts).
 *
 * Memberships are per (profile, segment, partner); a profile is a member of a segment while at least
 * one partner's membership of it is present. So the projection keeps each membership's presence and
 * counts member transitions only: a second partner adding a segment the profile already has, a
 * renewal, or one of two partners removing it changes no count. Pure here: which changes an event
 * makes, and what a change does to the counts given what is present.
 */
import { Context, Schema } from "effect"
import type { Effect, Option } from "effect"
import type { EventEnvelope } from "../../domain/envelope.ts"
import { Uint64String } from "../../domain/ids.ts"
import type { ReadModelError } from "../ReadModelError.ts"

/** The entity type whose events feed this read model (domain/entities/userprofile.ts). */
export const profileEntityType = "userprofile"

export const segmentsProjectionName = "segments"

/** What a membership event did to one (segment, partner) of the profile. */
export type Change = "add" | "remove" | "expire"

export interface MembershipChange {
  readonly segmentId: string
  readonly partner: string
  readonly change: Change
}

const changeOf: Readonly<Record<string, Change>> = { SegmentsAdded: "add", SegmentsRemoved: "remove", SegmentsExpired: "expire" }

// Only what counting needs: the rest of each membership is left undecoded, and ids are taken as the
// strings the profile decider validated before storing them (a million-line file is a million events;
// decoding sources, times and 64-bit ids again was half of the projection's work).
const Memberships = Schema.Struct({
  memberships: Schema.Array(Schema.Struct({ partner: Schema.String, segmentId: Schema.String }))
})
const decodeMemberships = Schema.decodeUnknownOption(Memberships)

export const canHandle = (event: EventEnvelope): boolean => event.entityType === profileEntityType && event.type in changeOf

/** The membership changes of a profile event, in event order; undefined when its data does not decode. */
export const changesOf = (event: EventEnvelope): ReadonlyArray<MembershipChange> | undefined => {
  const change = changeOf[event.type]
  const decoded = decodeMemberships(event.data)
  if (change === undefined || decoded._tag === "None") return undefined
  return decoded.value.memberships.map(({ segmentId, partner }) => ({ segmentId, partner, change }))
}

/** The UTC day an event counts on: its `recordedAt`'s (the store's commit time, not the record's `time`). */
export const dayOf = (recordedAt: string): string =>
  recordedAt.endsWith("Z") ? recordedAt.slice(0, 10) : new Date(recordedAt).toISOString().slice(0, 10)

/** How one membership change moves the counts. */
export interface Transition {
  /** the partner's membership is now present (undefined: unchanged) */
  readonly present?: boolean
  /** +1 / -1 on the partner's members */
  readonly partnerDelta: number
  /** the segment's day counter it adds one to, when the profile joined or left the segment */
  readonly counted?: "added" | "removed" | "expired"
}

/**
 * What a change does, given whether this partner's membership is present and whether another
 * partner's is. An add of a present membership is a renewal; a remove or expiry of an absent one changes nothing.
 */
export const transition = (change: Change, partnerPresent: boolean, othersPresent: boolean): Transition => {
  if (change === "add") {
    return partnerPresent ? { partnerDelta: 0 } : { present: true, partnerDelta: 1, ...(othersPresent ? {} : { counted: "added" }) }
  }
  if (!partnerPresent) return { partnerDelta: 0 }
  return { present: false, partnerDelta: -1, ...(othersPresent ? {} : { counted: change === "remove" ? "removed" : "expired" }) }
}

const dayPattern = /^\d{4}-\d{2}-\d{2}$/

/** A UTC calendar day, `YYYY-MM-DD`, that exists (2026-02-30 does not). */
export const Day = Schema.String.check(
  Schema.makeFilter((s: string) => {
    const date = new Date(`${s}T00:00:00Z`)
    return (dayPattern.test(s) && !Number.isNaN(date.getTime()) && date.toISOString().slice(0, 10) === s) || "Expected a day as YYYY-MM-DD"
  }, { description: "a UTC day, YYYY-MM-DD", examples: ["2026-11-28"] })
)

export const SegmentDay = Schema.Struct({
  /** UTC day of the events' recordedAt */
  day: Day,
  /** profiles that became members (no partner's membership was present before) */
  added: Schema.Int,
  /** profiles that stopped being members because the last partner's membership was removed */
  removed: Schema.Int,
  /** profiles that stopped being members because the last partner's membership expired */
  expired: Schema.Int
}).annotate({ identifier: "SegmentDay" })

export const PartnerMembers = Schema.Struct({
  partner: Schema.String,
  /** profiles whose membership from this partner is present now (a profile fed by two partners counts for each) */
  members: Schema.Int
}).annotate({ identifier: "PartnerMembers" })

export const Segment = Schema.Struct({
  segmentId: Uint64String,
  /** profiles that are members now */
  members: Schema.Int,
  /** members per partner now, partners with none left out */
  partners: Schema.Array(PartnerMembers),
  /** days from `from` to `to` on which anything changed, oldest first; days without changes are left out */
  days: Schema.Array(SegmentDay)
}).annotate({ identifier: "Segment" })
export type Segment = typeof Segment.Type

export const PartnerSegment = Schema.Struct({
  segmentId: Uint64String,
  /** profiles whose membership from this partner is present now */
  members: Schema.Int
}).annotate({ identifier: "PartnerSegment" })
export type PartnerSegment = typeof PartnerSegment.Type

export interface PartnerSegmentPage {
  readonly items: ReadonlyArray<PartnerSegment>
  /** whether segments follow the last item */
  readonly more: boolean
}

/** Reads of the segment read model. Declared here; SQLite in infra/readmodel/segmentsQueries.ts. */
export class SegmentReadModel extends Context.Service<SegmentReadModel, {
  /** The segment with its changes on days `from` to `to` (inclusive); none when it never had a member. */
  readonly get: (segmentId: string, days: { readonly from: string; readonly to: string }) => Effect.Effect<Option.Option<Segment>, ReadModelError>
  /** The segments a partner ever fed, in numeric id order, after the id `after` when given. */
  readonly ofPartner: (partner: string, options: { readonly limit: number; readonly after?: string }) => Effect.Effect<PartnerSegmentPage, ReadModelError>
}>()("tributary/SegmentReadModel") {}
