/**
 * The `delivery-packages` projection on SQLite (its rule is pure, in projections/delivery/packages.ts),
 * and the outbox it writes. Tables of `delivery.db`:
 * - `delivery_profiles`: per profile, the revision that last changed its memberships (a replay — an
 *   older checkpoint, a paused former lease holder — changes nothing);
 * - `delivery_members`: per (segment, profile) member now, the partners whose membership is present
 *   (refreshes page through it by segment);
 * - `delivery_destinations` (fields, null once deleted; the revision applied last, a replay changing
 *   nothing; its incarnation, which stamps its chunks) and `delivery_targets` (segment → destination, lanes);
 * - `delivery_sequences`: the next `seq` of each destination and lane's continuous package;
 * - `delivery_outbox`: chunks not yet on DELIVER, in the order they were written (AUTOINCREMENT id),
 *   with their destination and the lane count they were split for;
 * - `delivery_published_lanes`: per destination, the lane count of the chunks the publisher put on
 *   DELIVER last (the publisher's, not the projection's: it mirrors DELIVER, so a rebuild keeps it).
 *
 * The projection's changes, the chunks they make and its checkpoint are one transaction; so is a
 * refresh (members read and their chunks written in one), so on DELIVER a refresh's adds sit exactly
 * between the changes before it and those after it: a later remove never overtakes them.
 */
import type { DatabaseSync, StatementSync } from "node:sqlite"
import type { Schema } from "effect"
import { type Chunk, chunkId } from "../../domain/delivery/Chunk.ts"
import { deliveryRecord, type DestinationTargets, laneOf, type LanePacker, lanePacker, type PackedChunk, type Split, targetsOf } from "../../domain/delivery/packaging.ts"
import type { EventEnvelope } from "../../domain/envelope.ts"
import { deliverSubject } from "../../domain/subjects.ts"
import type { Projection } from "../../projections/Projection.ts"
import { canHandle, destinationFields, destinationType, droppedSegments, isDestinationEvent, memberChanges, newSegments, packagesProjectionName } from "../../projections/delivery/packages.ts"

const TABLES = `
  CREATE TABLE IF NOT EXISTS delivery_profiles (profile_id TEXT PRIMARY KEY, revision INTEGER NOT NULL) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS delivery_members (
    segment_id TEXT NOT NULL, profile_id TEXT NOT NULL, partners TEXT NOT NULL, PRIMARY KEY (segment_id, profile_id)) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS delivery_destinations (destination TEXT PRIMARY KEY, revision INTEGER NOT NULL, fields TEXT, incarnation INTEGER) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS delivery_targets (
    segment_id TEXT NOT NULL, destination TEXT NOT NULL, lanes INTEGER NOT NULL, PRIMARY KEY (segment_id, destination)) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS delivery_targets_by_destination ON delivery_targets (destination);
  CREATE TABLE IF NOT EXISTS delivery_sequences (
    destination TEXT NOT NULL, lane INTEGER NOT NULL, next_seq INTEGER NOT NULL, PRIMARY KEY (destination, lane)) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS delivery_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, subject TEXT NOT NULL, msg_id TEXT NOT NULL, chunk TEXT NOT NULL, records INTEGER NOT NULL,
    destination TEXT NOT NULL, lanes INTEGER);
  CREATE TABLE IF NOT EXISTS delivery_refreshes (destination TEXT PRIMARY KEY, last_at INTEGER NOT NULL) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS delivery_published_lanes (destination TEXT PRIMARY KEY, lanes INTEGER NOT NULL) WITHOUT ROWID;
`
const DROP = ["delivery_profiles", "delivery_members", "delivery_destinations", "delivery_targets", "delivery_sequences", "delivery_outbox", "delivery_refreshes"]
  .map((t) => `DROP TABLE IF EXISTS ${t};`).join(" ")

export const createTables = (db: DatabaseSync, options: { readonly rebuild: boolean }) => {
  if (options.rebuild) db.exec(DROP)
  db.exec(TABLES)
  // delivery.db written before incarnations: its destinations' chunks stay unstamped until one is created again
  const columns = db.prepare("PRAGMA table_info(delivery_destinations)").all() as Array<{ name: string }>
  if (!columns.some((column) => column.name === "incarnation")) db.exec("ALTER TABLE delivery_destinations ADD COLUMN incarnation INTEGER")
  stampOutbox(db)
  // lanes in the index: the publisher reads a destination's next lane count without reading past a chunk's body
  db.exec("CREATE INDEX IF NOT EXISTS delivery_outbox_by_destination ON delivery_outbox (destination, id, lanes)")
}

/** An outbox written before chunks were stamped: each row's destination read from its chunk, its lane count unknown. */
const stampOutbox = (db: DatabaseSync) => {
  const columns = db.prepare("PRAGMA table_info(delivery_outbox)").all() as Array<{ name: string }>
  if (columns.some((column) => column.name === "destination")) return
  db.exec(`ALTER TABLE delivery_outbox ADD COLUMN destination TEXT; ALTER TABLE delivery_outbox ADD COLUMN lanes INTEGER;
    UPDATE delivery_outbox SET destination = json_extract(chunk, '$.destination');`)
}

export interface Statements {
  readonly profileRevision: StatementSync
  readonly setProfileRevision: StatementSync
  readonly member: StatementSync
  readonly setMember: StatementSync
  readonly deleteMember: StatementSync
  readonly members: StatementSync
  readonly destination: StatementSync
  readonly setDestination: StatementSync
  readonly targetsOfSegment: StatementSync
  readonly clearTargets: StatementSync
  readonly addTarget: StatementSync
  readonly nextSeq: StatementSync
  readonly setNextSeq: StatementSync
  readonly insertChunk: StatementSync
}

export const prepare = (db: DatabaseSync): Statements => ({
  profileRevision: db.prepare("SELECT revision FROM delivery_profiles WHERE profile_id = ?"),
  setProfileRevision: db.prepare("INSERT OR REPLACE INTO delivery_profiles VALUES (?, ?)"),
  member: db.prepare("SELECT partners FROM delivery_members WHERE segment_id = ? AND profile_id = ?"),
  setMember: db.prepare("INSERT OR REPLACE INTO delivery_members VALUES (?, ?, ?)"),
  deleteMember: db.prepare("DELETE FROM delivery_members WHERE segment_id = ? AND profile_id = ?"),
  members: db.prepare("SELECT profile_id FROM delivery_members WHERE segment_id = ? ORDER BY profile_id"),
  destination: db.prepare("SELECT revision, fields, incarnation FROM delivery_destinations WHERE destination = ?"),
  setDestination: db.prepare("INSERT OR REPLACE INTO delivery_destinations (destination, revision, fields, incarnation) VALUES (?, ?, ?, ?)"),
  targetsOfSegment: db.prepare(
    "SELECT t.destination, t.lanes, d.incarnation FROM delivery_targets t JOIN delivery_destinations d USING (destination) WHERE t.segment_id = ? ORDER BY t.destination"
  ),
  clearTargets: db.prepare("DELETE FROM delivery_targets WHERE destination = ?"),
  addTarget: db.prepare("INSERT OR REPLACE INTO delivery_targets VALUES (?, ?, ?)"),
  nextSeq: db.prepare("SELECT next_seq FROM delivery_sequences WHERE destination = ? AND lane = ?"),
  setNextSeq: db.prepare("INSERT OR REPLACE INTO delivery_sequences VALUES (?, ?, ?)"),
  insertChunk: db.prepare("INSERT INTO delivery_outbox (subject, msg_id, chunk, records, destination, lanes) VALUES (?, ?, ?, ?, ?, ?)")
})

/** Puts a numbered chunk in the outbox. */
export const writeChunk = (s: Statements, chunk: Chunk) =>
  s.insertChunk.run(deliverSubject(chunk.destination, chunk.lane), chunkId(chunk), JSON.stringify(chunk), chunk.records.length, chunk.destination, chunk.lanes ?? null)

interface DestinationRow {
  readonly revision: number
  readonly fields: string | null
  readonly incarnation: number | null
}

/** A live destination's fields and incarnation (undefined: unknown or deleted). */
export const destinationOf = (s: Statements, destination: string): { readonly fields: Schema.JsonObject; readonly incarnation: number | undefined } | undefined => {
  const row = s.destination.get(destination) as DestinationRow | undefined
  return row?.fields == null ? undefined : { fields: JSON.parse(row.fields), incarnation: row.incarnation ?? undefined }
}

export interface RefreshPackage {
  readonly destination: string
  readonly targets: DestinationTargets
  /** the segments to refresh (default: all the destination takes) */
  readonly segmentIds?: ReadonlyArray<string>
  /** `add` (a refresh, the default) or `remove` (a withdrawal of segments the destination dropped) */
  readonly op?: "add" | "remove"
  readonly packageId: string
  /** the destination's incarnation its chunks are stamped with */
  readonly incarnation: number | undefined
  /** the records' time */
  readonly time: string
  readonly maxRecords: number
}

/**
 * Writes a refresh package: every member of the segments, as `add` records, in chunks per lane. Reads
 * the members a statement row at a time, so memory holds one open chunk per lane whatever the size.
 * Returns the number of records. Run inside the caller's transaction.
 */
export const writeRefresh = (s: Statements, refresh: RefreshPackage): number => {
  const lanes = refresh.targets.lanes ?? 1
  const seqs = new Map<number, number>()
  const packer = lanePacker({
    packageId: refresh.packageId,
    kind: "refresh",
    maxRecords: refresh.maxRecords,
    emit: (chunk) => {
      const seq = seqs.get(chunk.lane) ?? 0
      seqs.set(chunk.lane, seq + 1)
      writeChunk(s, { ...chunk, seq })
    }
  })
  let records = 0
  for (const segmentId of new Set(refresh.segmentIds ?? refresh.targets.segmentIds)) {
    for (const row of s.members.iterate(segmentId) as Iterable<{ profile_id: string }>) {
      const record = deliveryRecord(row.profile_id, segmentId, refresh.op ?? "add", refresh.time)
      if (record === undefined) continue
      packer.add({ destination: refresh.destination, lanes, incarnation: refresh.incarnation }, laneOf(row.profile_id, lanes), record)
      records++
    }
  }
  packer.flush()
  return records
}

/** Numbers continuous chunks per destination and lane and writes them. */
const continuousWriter = (s: Statements) => (chunk: PackedChunk) => {
  const row = s.nextSeq.get(chunk.destination, chunk.lane) as { next_seq: number } | undefined
  const seq = row?.next_seq ?? 0
  s.setNextSeq.run(chunk.destination, chunk.lane, seq + 1)
  writeChunk(s, { ...chunk, seq })
}

/** A destination's event that changes nothing packaged (its secrets, a dead letter discarded): only its revision is kept, as seen. */
const seenDestination = (s: Statements, event: EventEnvelope) => {
  const row = s.destination.get(event.entityId) as DestinationRow | undefined
  if (row !== undefined && row.revision < event.revision) s.setDestination.run(event.entityId, event.revision, row.fields ?? null, row.incarnation ?? null)
}

/** A destination's event: its fields and targets kept, a refresh of the segments it starts taking, a withdrawal of those it drops. */
const applyDestination = (s: Statements, event: EventEnvelope, maxRecords: number): boolean => {
  const row = s.destination.get(event.entityId) as DestinationRow | undefined
  if (row !== undefined && row.revision >= event.revision) return true // applied already: a replay
  const beforeFields: Schema.JsonObject | null = row?.fields == null ? null : JSON.parse(row.fields)
  const after = destinationFields(beforeFields, event)
  if (after === undefined) return false
  // a destination created (again) is a new incarnation: the revision of its EntityCreated (domain/delivery/Incarnation.ts)
  const incarnation = event.type === "EntityCreated" ? event.revision : row?.incarnation ?? undefined
  s.setDestination.run(event.entityId, event.revision, after === null ? null : JSON.stringify(after), incarnation ?? null)
  s.clearTargets.run(event.entityId)
  const targets = after === null ? undefined : targetsOf(after)
  if (targets === undefined) return true
  for (const segmentId of new Set(targets.segmentIds)) s.addTarget.run(segmentId, event.entityId, targets.lanes ?? 1)
  const before = beforeFields === null ? undefined : targetsOf(beforeFields)
  // The event's id is a UUID v7: the package ids are the same on every replay (no clock in a projection).
  const fresh = newSegments(before, targets)
  if (fresh.length > 0) {
    writeRefresh(s, { destination: event.entityId, targets, segmentIds: fresh, packageId: `refresh-${event.eventId}`, incarnation, time: event.recordedAt, maxRecords })
  }
  const dropped = droppedSegments(before, targets)
  if (dropped.length > 0) {
    writeRefresh(s, {
      destination: event.entityId,
      targets,
      segmentIds: dropped,
      op: "remove",
      packageId: `withdraw-${event.eventId}`,
      incarnation,
      time: event.recordedAt,
      maxRecords
    })
  }
  return true
}

/** A profile's event: its memberships kept, and a record per destination taking each segment it joined or left. */
const applyProfile = (s: Statements, event: EventEnvelope, packer: LanePacker, targets: (segmentId: string) => ReadonlyArray<Split>): boolean => {
  const profile = event.entityId
  const row = s.profileRevision.get(profile) as { revision: number } | undefined
  if (row !== undefined && row.revision >= event.revision) return true // applied already: a replay
  let changed = false
  const held = (segmentId: string): ReadonlyArray<string> => {
    const member = s.member.get(segmentId, profile) as { partners: string } | undefined
    return member === undefined ? [] : JSON.parse(member.partners)
  }
  const hold = (segmentId: string, partners: ReadonlyArray<string>) => {
    changed = true
    if (partners.length === 0) s.deleteMember.run(segmentId, profile)
    else s.setMember.run(segmentId, profile, JSON.stringify(partners))
  }
  const changes = memberChanges(event, held, hold)
  if (changes === undefined) return false
  for (const { segmentId, op, time } of changes) {
    const record = deliveryRecord(profile, segmentId, op, time)
    if (record === undefined) continue
    for (const target of targets(segmentId)) {
      packer.add(target, laneOf(profile, target.lanes), record, event.position)
    }
  }
  if (changed) s.setProfileRevision.run(profile, event.revision)
  return true
}

/** The destinations taking each segment, read once per page (and again after a destination's event). */
const targetCache = (s: Statements) => {
  const cache = new Map<string, ReadonlyArray<Split>>()
  return {
    of: (segmentId: string): ReadonlyArray<Split> => {
      let found = cache.get(segmentId)
      if (found === undefined) {
        found = s.targetsOfSegment.all(segmentId) as unknown as Array<Split>
        cache.set(segmentId, found)
      }
      return found
    },
    clear: () => cache.clear()
  }
}

/** The projection, declared as data; its statements are prepared once per connection (again after a rebuild). */
export const packagesProjection = (options: { readonly maxRecords: number }): Projection<DatabaseSync> => {
  let prepared: { readonly db: DatabaseSync; readonly statements: Statements } | undefined
  const statementsOf = (db: DatabaseSync) => {
    if (prepared?.db !== db) prepared = { db, statements: prepare(db) }
    return prepared.statements
  }
  return {
    name: packagesProjectionName,
    init: (db, { rebuild }) => {
      createTables(db, { rebuild })
      prepared = undefined
    },
    canHandle,
    evolve: (db, events) => {
      const s = statementsOf(db)
      const skipped: Array<string> = []
      const packer = lanePacker({ packageId: "continuous", kind: "continuous", maxRecords: options.maxRecords, emit: continuousWriter(s) })
      const targets = targetCache(s)
      for (const event of events) {
        if (isDestinationEvent(event)) {
          packer.flush() // the destination's earlier changes go before any refresh this event makes
          targets.clear()
          if (!applyDestination(s, event, options.maxRecords)) skipped.push(event.type)
        } else if (event.entityType === destinationType) {
          seenDestination(s, event)
        } else if (!applyProfile(s, event, packer, targets.of)) {
          skipped.push(event.type)
        }
      }
      packer.flush()
      return { skipped }
    }
  }
}
