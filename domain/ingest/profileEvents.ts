/**
 * What the user profile entity (domain/entities/userprofile.ts) is told and what it records: the
 * shared vocabulary of the translator (sends `Apply`), the profile decider, and the projections of
 * profiles and segments. Memberships are per partner: one partner's remove never erases another's add.
 * Every change names the source line it came from (partner, job, digest, line).
 */
import { Schema } from "effect"
import { Uint64String } from "../ids.ts"
import { IsoDateTime } from "../isoDateTime.ts"
import { Operation, RecordSource, TtlSeconds } from "./LoaderRecord.ts"

/** One record for one profile, as the translator sends it (the user id is the entity's). */
export const ProfileRecord = Schema.Struct({
  segmentId: Uint64String,
  op: Operation,
  time: IsoDateTime,
  /** counts from `time`; none: the partner's default, or no expiry */
  ttlSeconds: Schema.optionalKey(TtlSeconds),
  source: RecordSource
})
export type ProfileRecord = typeof ProfileRecord.Type

/** Commands: the records of one batch for this profile, in line order; and the reminder's wake-up. */
export const Apply = Schema.TaggedStruct("Apply", { records: Schema.Array(ProfileRecord).check(Schema.isMinLength(1)) })
export { Wake } from "../wake.ts"

/** A membership added or renewed (expiry moved) by a partner. */
export const AddedMembership = Schema.Struct({
  partner: Schema.String,
  segmentId: Uint64String,
  time: IsoDateTime,
  expiresAt: Schema.optionalKey(IsoDateTime),
  source: RecordSource
})
export const RemovedMembership = Schema.Struct({
  partner: Schema.String,
  segmentId: Uint64String,
  time: IsoDateTime,
  source: RecordSource
})
export const ExpiredMembership = Schema.Struct({
  partner: Schema.String,
  segmentId: Uint64String,
  expiresAt: IsoDateTime
})

export const SegmentsAdded = Schema.TaggedStruct("SegmentsAdded", { memberships: Schema.Array(AddedMembership) })
export const SegmentsRemoved = Schema.TaggedStruct("SegmentsRemoved", { memberships: Schema.Array(RemovedMembership) })
/** `at`: the reminder's instant; every membership whose expiry is at or before it. */
export const SegmentsExpired = Schema.TaggedStruct("SegmentsExpired", { at: IsoDateTime, memberships: Schema.Array(ExpiredMembership) })
export const ProfileEvent = Schema.Union([SegmentsAdded, SegmentsRemoved, SegmentsExpired])
export type ProfileEvent = typeof ProfileEvent.Type
