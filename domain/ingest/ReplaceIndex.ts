/**
 * What a full-replacement file (`formatSpec.mode: "replace"`) needs to remove the partner's
 * memberships it no longer lists: which (segment, profile) memberships the partner's jobs committed
 * — kept by the translator for partners in replace mode, a superset of what is present (an expired
 * one stays listed: removing it again changes nothing), each with the time of the add that set it —
 * and which (segment, profile) pairs one job's file names. Declared here; stored by infra/ingest/replaceIndexSqlite.ts (DATA_DIR/ingest-members.db).
 */
import { Context, Schema } from "effect"
import type { Effect } from "effect"

/** A record that decided a membership: `present` after an add, not after a remove; `time` its time in epoch ms. */
export interface MembershipChange extends Membership {
  readonly present: boolean
  readonly time: number
}

/** What one look at the partner's memberships found (ReplaceIndex.unlisted). */
export interface UnlistedPage {
  readonly unlisted: ReadonlyArray<Membership>
  readonly next: Membership | undefined
}

export class ReplaceIndexError extends Schema.TaggedError<ReplaceIndexError>()("ReplaceIndexError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {}

export interface Membership {
  readonly segmentId: string
  readonly profileId: string
}

/** A record that decided a membership: `present` after an add, not after a remove; `time` its time in epoch ms. */
export interface MembershipChange extends Membership {
  readonly present: boolean
  readonly time: number
}

export class ReplaceIndex extends Context.Service<ReplaceIndex, {
  /**
   * Changes of `partner`'s memberships its commands committed, in any order: the newest by time decides, as
   * in the profile, and an add at the same time as a remove (an index that lists a membership removed
   * only costs a removal that changes nothing; one that misses a present one leaves it for good).
   */
  readonly committed: (partner: string, changes: ReadonlyArray<MembershipChange>) => Effect.Effect<void, ReplaceIndexError>
  /** `changes` (removals of `jobId`'s replacement) committed, and counted as its removals in the same transaction. */
  readonly removed: (partner: string, jobId: string, changes: ReadonlyArray<MembershipChange>) => Effect.Effect<void, ReplaceIndexError>
  /** The removals counted for `jobId` so far (kept across a restart, until `forget`). */
  readonly removedBy: (jobId: string) => Effect.Effect<number, ReplaceIndexError>
  /** Pairs the job's file names, and so their segments (kept until `forget`, so a resumed job still knows its earlier lines). */
  readonly listed: (jobId: string, memberships: ReadonlyArray<Membership>) => Effect.Effect<void, ReplaceIndexError>
  /** Segments the job's file names though it may list no one in them (a column layout's columns). */
  readonly named: (jobId: string, segmentIds: ReadonlyArray<string>) => Effect.Effect<void, ReplaceIndexError>
  /**
   * The partner's memberships, in the segments the job names, that the job does not name: at most `scan`
   * memberships looked at after `after`, in (segment, profile) order; `next` is where to go on from, none
   * once every one was looked at. A page may hold none and still have a `next`.
   */
  readonly unlisted: (partner: string, jobId: string, page: { readonly after?: Membership | undefined; readonly scan: number }) => Effect.Effect<UnlistedPage, ReplaceIndexError>
  /** The job's replacement takes effect at `time` (epoch ms): each segment it names was replaced then. */
  readonly replaced: (partner: string, jobId: string, time: number) => Effect.Effect<void, ReplaceIndexError>
  /** When each of these segments of the partner was last replaced (epoch ms; absent: never): a record dated before changes nothing. */
  readonly replacedAt: (partner: string, segmentIds: ReadonlyArray<string>) => Effect.Effect<ReadonlyMap<string, number>, ReplaceIndexError>
  /** The job ended: its list is dropped. */
  readonly forget: (jobId: string) => Effect.Effect<void, ReplaceIndexError>
}>()("tributary/ReplaceIndex") {}
