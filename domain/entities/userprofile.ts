/**
 * UserProfile: one user's segment memberships, per partner, with expiry (issue 7 item 6). Its id is
 * `<kind>:<user id>` as `profileId` writes it. Memberships are kept per (partner, segment), so one
 * partner's remove never erases another partner's add. There are tens of millions of profiles: they
 * publish history only (no SNAPSHOTS) and are applied in shard batches (`applies: "batch"`).
 *
 * Rules of one membership, each record in its `time` order (to the nanosecond):
 * - a record older than the one the membership last applied changes nothing (a late, older add does
 *   not undo a newer remove: a removal is kept as a tombstone for that);
 * - at the same `time`, a line of the same file at or before the one that set it changes nothing;
 * - the record that last set the membership (same digest, line and segment) changes nothing (a
 *   redelivery); a new file (another digest) with the same line is new data and renews the expiry;
 * - `ttlSeconds` counts from `time`; `Wake{at}` expires every present membership due at or before it;
 * - a partner holds at most `maxProfileMemberships` memberships on a profile, present or past.
 */
import { Result, Schema } from "effect"
import { type DecideContext, decider } from "../Decider.ts"
import { CommandRefused } from "../entity.ts"
import { Uint64String } from "../ids.ts"
import { normalizeUserId, parseProfileId, profileId, RecordSource } from "../ingest/LoaderRecord.ts"
import {
  AddedMembership,
  Apply,
  ExpiredMembership,
  ProfileEvent,
  type ProfileRecord,
  RemovedMembership,
  SegmentsExpired,
  Wake
} from "../ingest/profileEvents.ts"

/** Exactly the ids `profileId` writes, of user ids already normalised for their kind (one person, one profile). */
export const ProfileId = Schema.String.check(
  Schema.makeFilter((id: string) => {
    const parsed = parseProfileId(id)
    if (parsed === undefined) return "Expected <kind>:<user id> (kind: cookie, maid, email_sha256, phone_sha256, customer)"
    const normal = normalizeUserId(parsed.idKind, parsed.userId)
    if (Result.isFailure(normal)) return normal.failure
    return (normal.success === parsed.userId && profileId(parsed.idKind, parsed.userId) === id) ||
      "Expected the user id as profileId writes it (normalised, unsafe ids encoded as ~base64url)"
  }, { description: "<kind>:<user id>; a user id that is not a safe subject token is written ~ + base64url of its UTF-8" })
)

export const ProfileCommand = Schema.Union([Apply, Wake])
export type ProfileCommand = typeof ProfileCommand.Type

/** One (partner, segment) membership: present or not (removed, expired), and the record that last set it. */
export const Membership = Schema.Struct({
  partner: Schema.String,
  segmentId: Uint64String,
  present: Schema.Boolean,
  /** the `time` of the record it last applied */
  time: Schema.String,
  /** when it became present (the record's time); kept while renewed */
  addedAt: Schema.optionalKey(Schema.String),
  expiresAt: Schema.optionalKey(Schema.String),
  source: RecordSource
})
export type Membership = typeof Membership.Type

export const ProfileState = Schema.Struct({ memberships: Schema.Record(Schema.String, Membership) })
export type ProfileState = typeof ProfileState.Type

const keyOf = (partner: string, segmentId: string) => `${partner}/${segmentId}`
const ms = (iso: string) => Date.parse(iso)
const iso = (millis: number) => new Date(millis).toISOString()

/**
 * Nanoseconds past the millisecond of an RFC 3339 time (its fraction's 4th to 9th digits), which `ms`
 * drops: a remove at …663000001Z sent after an add at …663000002Z undid it (stop 24's outside attack).
 */
const subMillis = (iso: string): number => {
  const fraction = /\.(\d+)/.exec(iso)?.[1]
  return fraction === undefined || fraction.length <= 3 ? 0 : Number(fraction.slice(3, 9).padEnd(6, "0"))
}

/** Whether `record` is newer than what `m` last applied (see the rules above). */
const supersedes = (record: ProfileRecord, m: Membership | undefined): boolean => {
  if (m === undefined) return true
  if (m.source.digest === record.source.digest && m.source.line === record.source.line) return false
  const t = ms(record.time)
  const last = ms(m.time)
  if (t !== last) return t > last
  const nanos = subMillis(record.time) - subMillis(m.time)
  if (nanos !== 0) return nanos > 0
  return m.source.digest !== record.source.digest || record.source.line > m.source.line
}

type Added = typeof AddedMembership.Type
type Removed = typeof RemovedMembership.Type

/**
 * What of one membership's changes in a command decides its end: the last remove, and the first and last
 * add of the run of adds after it (the first sets `addedAt`, the last the rest). Evolved removes first,
 * then adds, they leave the membership as every change in record order would.
 */
interface Ending {
  remove?: Removed | undefined
  firstAdd?: Added | undefined
  lastAdd?: Added | undefined
}

const addMembership = (state: ProfileState, added: Added): Membership => {
  const old = state.memberships[keyOf(added.partner, added.segmentId)]
  return {
    partner: added.partner,
    segmentId: added.segmentId,
    present: true,
    time: added.time,
    addedAt: old?.present === true && old.addedAt !== undefined ? old.addedAt : added.time,
    ...(added.expiresAt === undefined ? {} : { expiresAt: added.expiresAt }),
    source: added.source
  }
}

const removedMembership = (r: Removed): Membership =>
  ({ partner: r.partner, segmentId: r.segmentId, present: false, time: r.time, source: r.source })

/** Applies `event` to `memberships` in place. */
const evolveInto = (memberships: Record<string, Membership>, event: ProfileEvent): void => {
  switch (event._tag) {
    case "SegmentsAdded":
      for (const added of event.memberships) memberships[keyOf(added.partner, added.segmentId)] = addMembership({ memberships }, added)
      break
    case "SegmentsRemoved":
      for (const r of event.memberships) memberships[keyOf(r.partner, r.segmentId)] = removedMembership(r)
      break
    case "SegmentsExpired":
      for (const e of event.memberships) {
        const key = keyOf(e.partner, e.segmentId)
        const m = memberships[key]
        if (m !== undefined) {
          const { addedAt: _addedAt, expiresAt: _expiresAt, ...rest } = m
          memberships[key] = { ...rest, present: false }
        }
      }
      break
  }
}

/**
 * A profile's history folded with one copy of its memberships: a copy an event made a read of a profile
 * of 10,000 segments and thousands of events hold the event loop for a minute (stop 23's second outside
 * attack; with `toJson` asked twice an event before `exists`).
 */
const evolveMany = (state: ProfileState, events: ReadonlyArray<ProfileEvent>): ProfileState => {
  const memberships = { ...state.memberships }
  for (const event of events) evolveInto(memberships, event)
  return { memberships }
}

const evolve = (state: ProfileState, event: ProfileEvent): ProfileState => evolveMany(state, [event])

/** A profile exists once a record was applied to it (memberships are never dropped, only marked absent). */
const exists = (state: ProfileState): boolean => {
  for (const _ in state.memberships) return true
  return false
}

/**
 * Memberships one partner holds on a profile at most, a segment each, present or past (removed and
 * expired ones are kept, so that a late, older record cannot undo a newer one). A command that would make
 * more is refused whole, its lines rejected with the reason; changes to memberships the profile holds are
 * always taken. Every command folds and decides over the whole profile: before the cap (stop 26's outside
 * attack), one partner's POSTs gave one user 280,000, `/ready` took 20.6 s, another partner's real-time
 * job waited 7.9 s at p50 (0.64 s with the same volume over distinct users), and a read was 8.6 MB.
 * Per partner, not per profile: a cap on the whole profile let one partner fill a user it shares with
 * others and shut every other partner out of that user for good (the re-attack of stop 26). Profiles
 * that passed it before keep what they hold.
 */
export const maxProfileMemberships = 10_000

/**
 * At most two events a command: its removes, then its adds, each membership's changes cut to those that
 * decide its end (Ending). An event a change cost a copy of every membership (evolve): 2,000 lines
 * alternating add and remove of one segment on a profile of 10,000 made 2,000 events, each one decided,
 * applied and read back again, and held the event loop for over a minute at each (stop 23's second
 * outside attack). A change undone within the same command is not history: a command commits at once.
 */
const decideApply = (records: ReadonlyArray<ProfileRecord>, state: ProfileState, context: DecideContext): Result.Result<Array<ProfileEvent>, CommandRefused> => {
  // One working copy of the memberships for the whole command, changed in place.
  const memberships: Record<string, Membership> = { ...state.memberships }
  const working: ProfileState = { memberships }
  const endings = new Map<string, Ending>()
  /** memberships the command makes anew, by partner */
  const made = new Map<string, number>()
  for (const record of records) {
    const { partner } = record.source
    const key = keyOf(partner, record.segmentId)
    if (!supersedes(record, memberships[key])) continue
    if (memberships[key] === undefined) made.set(partner, (made.get(partner) ?? 0) + 1)
    let ending = endings.get(key)
    if (ending === undefined) endings.set(key, ending = {})
    if (record.op === "add") {
      const added: Added = {
        partner,
        segmentId: record.segmentId,
        time: record.time,
        ...(record.ttlSeconds === undefined ? {} : { expiresAt: iso(ms(record.time) + record.ttlSeconds * 1000) }),
        source: record.source
      }
      ending.firstAdd ??= added
      ending.lastAdd = added
      memberships[key] = addMembership(working, added)
    } else {
      const removed: Removed = { partner, segmentId: record.segmentId, time: record.time, source: record.source }
      endings.set(key, { remove: removed })
      memberships[key] = removedMembership(removed)
    }
  }
  const removes: Array<Removed> = []
  const adds: Array<Added> = []
  for (const { remove, firstAdd, lastAdd } of endings.values()) {
    if (remove !== undefined) removes.push(remove)
    if (firstAdd !== undefined) adds.push(firstAdd)
    if (lastAdd !== undefined && lastAdd !== firstAdd) adds.push(lastAdd)
  }
  if (made.size > 0) {
    const held = new Map<string, number>()
    for (const m of Object.values(state.memberships)) if (made.has(m.partner)) held.set(m.partner, (held.get(m.partner) ?? 0) + 1)
    for (const [partner, count] of made) {
      const total = (held.get(partner) ?? 0) + count
      if (total <= maxProfileMemberships) continue
      return Result.fail(new CommandRefused({
        entityType: context.entityType,
        entityId: context.entityId,
        reason: `the profile would hold ${total} memberships of partner ${partner} (its segments, present or past), more than ${maxProfileMemberships}`
      }))
    }
  }
  return Result.succeed([
    ...(removes.length === 0 ? [] : [{ _tag: "SegmentsRemoved", memberships: removes } as ProfileEvent]),
    ...(adds.length === 0 ? [] : [{ _tag: "SegmentsAdded", memberships: adds } as ProfileEvent])
  ])
}

/**
 * Memberships one event names at most: an event is one HISTORY message, which NATS carries up to its
 * max_payload (a membership takes ~350 bytes at most: 2,000 stay under 1 MB). An Apply's events hold at
 * most its records (profileBatches.ts, maxApplyRecords), a Wake's are cut to it.
 */
export const maxMembershipsPerEvent = 2_000

const decideWake = (at: number, state: ProfileState): Array<ProfileEvent> => {
  const due: Array<typeof ExpiredMembership.Type> = []
  for (const m of Object.values(state.memberships)) {
    if (m.present && m.expiresAt !== undefined && ms(m.expiresAt) <= at) due.push({ partner: m.partner, segmentId: m.segmentId, expiresAt: m.expiresAt })
  }
  // Events of at most maxMembershipsPerEvent: one naming 60,000 expiries was 9 MB, which HISTORY could not
  // carry, and the relay, retrying it first at every start, stopped history for every tenant (stop 23's
  // third outside attack).
  const events: Array<ProfileEvent> = []
  for (let i = 0; i < due.length; i += maxMembershipsPerEvent) {
    events.push(SegmentsExpired.make({ at: iso(at), memberships: due.slice(i, i + maxMembershipsPerEvent) }))
  }
  return events
}

/** Numeric order of 64-bit decimal ids. */
const bySegment = (a: string, b: string) => a.length - b.length || (a < b ? -1 : a > b ? 1 : 0)

/** The segments a profile is in now: present if any partner's membership is (see ProfileSegment). */
export const segmentsOf = (state: ProfileState) => {
  const bySegmentId = new Map<string, Array<Membership>>()
  for (const m of Object.values(state.memberships)) {
    if (!m.present) continue
    bySegmentId.set(m.segmentId, [...bySegmentId.get(m.segmentId) ?? [], m])
  }
  return [...bySegmentId.keys()].sort(bySegment).map((segmentId) => {
    const ms_ = bySegmentId.get(segmentId)!.toSorted((a, b) => (a.partner < b.partner ? -1 : a.partner > b.partner ? 1 : 0))
    const expiries = ms_.map((m) => m.expiresAt)
    const expiresAt = expiries.some((e) => e === undefined) ? undefined : expiries.map((e) => e!).reduce((a, b) => (ms(a) >= ms(b) ? a : b))
    const addedAt = ms_.map((m) => m.addedAt ?? m.time).reduce((a, b) => (ms(a) <= ms(b) ? a : b))
    return {
      segmentId,
      ...(expiresAt === undefined ? {} : { expiresAt }),
      addedAt,
      sources: ms_.map((m) => ({ partner: m.partner, jobId: m.source.jobId, line: m.source.line }))
    }
  })
}

/**
 * A segment of the public profile: present while any partner's membership is; `expiresAt` the latest
 * among partners (none when any has none), `addedAt` the earliest, `sources` the line that set each.
 */
export const ProfileSegment = Schema.Struct({
  segmentId: Uint64String,
  expiresAt: Schema.optionalKey(Schema.String),
  addedAt: Schema.String,
  sources: Schema.optionalKey(Schema.Array(Schema.Struct({ partner: Schema.String, jobId: Schema.String, line: Schema.Int })))
}).annotate({ identifier: "ProfileSegment" })

export const userprofile = decider<ProfileCommand, ProfileEvent, ProfileState>({
  type: "userprofile",
  id: ProfileId,
  command: ProfileCommand,
  event: ProfileEvent,
  state: ProfileState,
  initialState: () => ({ memberships: {} }),
  decide: (command, state, context) =>
    command._tag === "Apply" ? decideApply(command.records, state, context) : Result.succeed(decideWake(command.at, state)),
  evolve,
  evolveMany,
  // The kind and user id are the entity id's (parseProfileId); the state says the segments.
  toJson: (state) => exists(state) ? { segments: segmentsOf(state) } : null,
  // which partner file line set each segment is for auditors (as /v1/profiles' explain)
  serviceView: (json) => ({
    ...json,
    segments: (json.segments as ReadonlyArray<Schema.JsonObject>).map(({ sources: _sources, ...segment }) => segment)
  }),
  exists,
  // Every membership names the partner file line it came from (explain, segments' per-partner counts,
  // allowedSegments): a service key sending Apply over HTTP wrote any partner, job and line it liked, past
  // that partner's allowedSegments and its cap of memberships (stop 28's outside attack).
  platformCommands: { Apply: "Apply is sent by the partner translators only: a profile changes through partner ingestion (/v1/ingest), which records where each membership came from" },
  // The next whole second at or after the earliest expiry: one Wake a second at most, expiring all then
  // due. Woken at each expiry, 10,000 memberships a millisecond apart were 10,000 Wakes, each a pass over
  // every membership (stop 23's fourth outside attack). A membership goes at most a second late.
  wakeAt: (state) => {
    let earliest: number | undefined
    for (const m of Object.values(state.memberships)) {
      if (!m.present || m.expiresAt === undefined) continue
      const at = ms(m.expiresAt)
      if (earliest === undefined || at < earliest) earliest = at
    }
    return earliest === undefined ? undefined : Math.ceil(earliest / 1_000) * 1_000
  },
  publishesSnapshots: false,
  applies: "batch"
})
