/**
 * The `segments` projection on SQLite (its rule is pure, in projections/ingest/segments.ts). Tables:
 * - `segment_memberships`: each (segment, profile, partner) membership ever seen, present or not, with
 *   the profile revision that last changed it: an event at or before that revision is a replay and
 *   changes nothing, so even a replay from an older checkpoint (a read model file reset to an older
 *   layout, a restore) never counts twice;
 * - `segments` (members now), `segment_partners` (members per partner now), `segment_days` (per UTC day).
 * A page of events is one transaction (ProjectionStore), with prepared statements and the counters
 * summed in memory and written once per page.
 */
import type { DatabaseSync, StatementSync } from "node:sqlite"
import type { EventEnvelope } from "../../domain/envelope.ts"
import type { Projection } from "../../projections/Projection.ts"
import { canHandle, changesOf, dayOf, segmentsProjectionName, transition } from "../../projections/ingest/segments.ts"

const TABLES = `
  CREATE TABLE IF NOT EXISTS segment_memberships (
    segment_id TEXT NOT NULL, profile_id TEXT NOT NULL, partner TEXT NOT NULL,
    present INTEGER NOT NULL, revision INTEGER NOT NULL,
    PRIMARY KEY (segment_id, profile_id, partner)) WITHOUT ROWID;
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

const DROP = "DROP TABLE IF EXISTS segment_memberships; DROP TABLE IF EXISTS segments; DROP TABLE IF EXISTS segment_partners; DROP TABLE IF EXISTS segment_days;"

interface Statements {
  readonly membership: StatementSync
  readonly others: StatementSync
  readonly setMembership: StatementSync
  readonly addMembers: StatementSync
  readonly addPartnerMembers: StatementSync
  readonly addDay: StatementSync
}

const prepare = (db: DatabaseSync): Statements => ({
  membership: db.prepare("SELECT present, revision FROM segment_memberships WHERE segment_id = ? AND profile_id = ? AND partner = ?"),
  others: db.prepare("SELECT 1 FROM segment_memberships WHERE segment_id = ? AND profile_id = ? AND partner <> ? AND present = 1 LIMIT 1"),
  setMembership: db.prepare("INSERT OR REPLACE INTO segment_memberships VALUES (?, ?, ?, ?, ?)"),
  addMembers: db.prepare("INSERT INTO segments VALUES (?, ?) ON CONFLICT (segment_id) DO UPDATE SET members = members + excluded.members"),
  addPartnerMembers: db.prepare(
    "INSERT INTO segment_partners VALUES (?, ?, ?) ON CONFLICT (segment_id, partner) DO UPDATE SET members = members + excluded.members"
  ),
  addDay: db.prepare(
    `INSERT INTO segment_days VALUES (?, ?, ?, ?, ?) ON CONFLICT (segment_id, day)
     DO UPDATE SET added = added + excluded.added, removed = removed + excluded.removed, expired = expired + excluded.expired`
  )
})

// Prepared once per connection (and again after a rebuild dropped the tables).
const prepared = new WeakMap<DatabaseSync, Statements>()
const statementsOf = (db: DatabaseSync): Statements => {
  let statements = prepared.get(db)
  if (statements === undefined) {
    statements = prepare(db)
    prepared.set(db, statements)
  }
  return statements
}

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

export const segmentsProjection: Projection<DatabaseSync> = {
  name: segmentsProjectionName,
  init: (db, { rebuild }) => {
    if (rebuild) db.exec(DROP)
    db.exec(TABLES)
    prepared.delete(db)
  },
  canHandle,
  evolve: (db, events: ReadonlyArray<EventEnvelope>) => {
    const s = statementsOf(db)
    const page = counters()
    const skipped: Array<string> = []
    for (const event of events) {
      const changes = changesOf(event)
      if (changes === undefined) {
        skipped.push(event.type)
        continue
      }
      const profile = event.entityId
      for (const { segmentId, partner, change } of changes) {
        const row = s.membership.get(segmentId, profile, partner) as { present: number; revision: number } | undefined
        if (row !== undefined && row.revision >= event.revision) continue // applied already: a replay
        const partnerPresent = row?.present === 1
        // Whether another partner holds the profile in the segment matters only when this partner's presence flips.
        const flips = change === "add" ? !partnerPresent : partnerPresent
        const others = flips && s.others.get(segmentId, profile, partner) !== undefined
        const moved = transition(change, partnerPresent, others)
        if (moved.present === undefined) continue // a renewal, or the end of a membership that is not there
        s.setMembership.run(segmentId, profile, partner, moved.present ? 1 : 0, event.revision)
        page.partner(segmentId, partner, moved.partnerDelta)
        if (moved.counted !== undefined) page.count(segmentId, dayOf(event.recordedAt), moved.counted)
      }
    }
    for (const [segmentId, delta] of page.members) s.addMembers.run(segmentId, delta)
    for (const { segmentId, partner, delta } of page.partners.values()) s.addPartnerMembers.run(segmentId, partner, delta)
    for (const { segmentId, day, counts } of page.days.values()) s.addDay.run(segmentId, day, counts.added, counts.removed, counts.expired)
    return { skipped }
  }
}
