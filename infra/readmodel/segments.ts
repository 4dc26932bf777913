/**
 * The `segments` projection on SQLite (its rule is pure, in projections/ingest/segments.ts). Tables:
 * - `segment_profiles`: per profile, the (segment, partner) memberships present (JSON: segment id →
 *   partners) and the profile revision that last changed them: an event at or before that revision
 *   is a replay and changes nothing, so even a replay from an older checkpoint (a read model file
 *   reset to an older layout, a restore) never counts twice. One row a profile: an event is one
 *   read and at most one write, whatever its number of memberships;
 * - `segments` (members now), `segment_partners` (members per partner now), `segment_days` (per UTC day).
 * A page of events is one transaction (ProjectionStore), with prepared statements and the counters
 * summed in memory and written once per page.
 */
import type { DatabaseSync, StatementSync } from "node:sqlite"
import type { EventEnvelope } from "../../domain/envelope.ts"
import type { Projection } from "../../projections/Projection.ts"
import { canHandle, changesOf, dayOf, segmentsProjectionName, transition } from "../../projections/ingest/segments.ts"

const TABLES = `
  CREATE TABLE IF NOT EXISTS segment_profiles (
    profile_id TEXT PRIMARY KEY, revision INTEGER NOT NULL, memberships TEXT NOT NULL) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS segments (segment_id TEXT PRIMARY KEY, members INTEGER NOT NULL) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS segment_partners (
    segment_id TEXT NOT NULL, partner TEXT NOT NULL, members INTEGER NOT NULL,
    PRIMARY KEY (segment_id, partner)) WITHOUT ROWID;
  -- a partner's segments in numeric id order (ids are 64-bit decimal strings: (length, text))
  CREATE INDEX IF NOT EXISTS segment_partners_by_partner ON segment_partners (partner, length(segment_id), segment_id);
  CREATE TABLE IF NOT EXISTS segment_days (
    segment_id TEXT NOT NULL, day TEXT NOT NULL, added INTEGER NOT NULL, removed INTEGER NOT NULL, expired INTEGER NOT NULL,
    PRIMARY KEY (segment_id, day)) WITHOUT ROWID;
`

const DROP = "DROP TABLE IF EXISTS segment_profiles; DROP TABLE IF EXISTS segments; DROP TABLE IF EXISTS segment_partners; DROP TABLE IF EXISTS segment_days;"

interface Statements {
  readonly profile: StatementSync
  readonly setProfile: StatementSync
  readonly addMembers: StatementSync
  readonly addPartnerMembers: StatementSync
  readonly addDay: StatementSync
}

const prepare = (db: DatabaseSync): Statements => ({
  profile: db.prepare("SELECT revision, memberships FROM segment_profiles WHERE profile_id = ?"),
  setProfile: db.prepare("INSERT OR REPLACE INTO segment_profiles VALUES (?, ?, ?)"),
  addMembers: db.prepare("INSERT INTO segments VALUES (?, ?) ON CONFLICT (segment_id) DO UPDATE SET members = members + excluded.members"),
  addPartnerMembers: db.prepare(
    "INSERT INTO segment_partners VALUES (?, ?, ?) ON CONFLICT (segment_id, partner) DO UPDATE SET members = members + excluded.members"
  ),
  addDay: db.prepare(
    `INSERT INTO segment_days VALUES (?, ?, ?, ?, ?) ON CONFLICT (segment_id, day)
     DO UPDATE SET added = added + excluded.added, removed = removed + excluded.removed, expired = expired + excluded.expired`
  )
})


/** A profile's present memberships: segment id → the partners whose membership of it is present. */
type Held = Record<string, Array<string>>

interface DayCounts {
  added: number
  removed: number
  expired: number
}

/** Sums one page's counter changes, to write each counter once. */
const counters = () => {
  const members = new Map<string, number>()
  const partners = new Map<string, { readonly segmentId: string; readonly partner: string; delta: number }>()
  const days = new Map<string, { readonly segmentId: string; readonly day: string; readonly counts: DayCounts }>()
  return {
    members,
    partners,
    days,
    partner: (segmentId: string, partner: string, delta: number) => {
      const key = `${segmentId} ${partner}`
      const entry = partners.get(key) ?? { segmentId, partner, delta: 0 }
      entry.delta += delta
      partners.set(key, entry)
    },
    count: (segmentId: string, day: string, counted: keyof DayCounts) => {
      members.set(segmentId, (members.get(segmentId) ?? 0) + (counted === "added" ? 1 : -1))
      const key = `${segmentId} ${day}`
      const entry = days.get(key) ?? { segmentId, day, counts: { added: 0, removed: 0, expired: 0 } }
      entry.counts[counted] += 1
      days.set(key, entry)
    }
  }
}

/** Applies a page of profile events: the rule of projections/ingest/segments.ts, the counters written once. */
const evolve = (s: Statements, events: ReadonlyArray<EventEnvelope>) => {
  const page = counters()
  const skipped: Array<string> = []
  for (const event of events) {
    const changes = changesOf(event)
    if (changes === undefined) {
      skipped.push(event.type)
      continue
    }
    const profile = event.entityId
    const row = s.profile.get(profile) as { revision: number; memberships: string } | undefined
    if (row !== undefined && row.revision >= event.revision) continue // applied already: a replay
    const held: Held = row === undefined ? {} : JSON.parse(row.memberships)
    let changed = false
    for (const { segmentId, partner, change } of changes) {
      const partners = held[segmentId] ?? []
      const present = partners.includes(partner)
      const moved = transition(change, present, partners.length > (present ? 1 : 0))
      if (moved.present === undefined) continue // a renewal, or the end of a membership that is not there
      const next = moved.present ? [...partners, partner] : partners.filter((p) => p !== partner)
      if (next.length === 0) delete held[segmentId]
      else held[segmentId] = next
      changed = true
      page.partner(segmentId, partner, moved.partnerDelta)
      if (moved.counted !== undefined) page.count(segmentId, dayOf(event.recordedAt), moved.counted)
    }
    // Only renewals: nothing to write (replaying them again changes nothing either).
    if (changed) s.setProfile.run(profile, event.revision, JSON.stringify(held))
  }
  for (const [segmentId, delta] of page.members) s.addMembers.run(segmentId, delta)
  for (const { segmentId, partner, delta } of page.partners.values()) s.addPartnerMembers.run(segmentId, partner, delta)
  for (const { segmentId, day, counts } of page.days.values()) s.addDay.run(segmentId, day, counts.added, counts.removed, counts.expired)
  return { skipped }
}

/** The projection; its statements are prepared once per connection (and again after a rebuild dropped the tables). */
export const segmentsProjection = (): Projection<DatabaseSync> => {
  let prepared: { readonly db: DatabaseSync; readonly statements: Statements } | undefined
  const statementsOf = (db: DatabaseSync) => {
    if (prepared?.db !== db) prepared = { db, statements: prepare(db) }
    return prepared.statements
  }
  return {
    name: segmentsProjectionName,
    init: (db, { rebuild }) => {
      if (rebuild) db.exec(DROP)
      db.exec(TABLES)
      prepared = undefined
    },
    canHandle,
    evolve: (db, events) => evolve(statementsOf(db), events)
  }
}
