/**
 * The rollups' writer thread (infra/sqliteThread.ts): it owns `rollups.db`'s write connection and does
 * what a pulled batch of EVENTS_CLEAN or SESSIONS messages costs once decoded — summing each message
 * into its rows, the statements and the commit — beside the main thread, which takes the messages off
 * NATS, decodes them (Schema: an undecodable one is set aside there, before its batch commits) and
 * acknowledges them (infra/events/rollupConsumer.ts). Summing and writing were a tenth of the main
 * thread's time under the app-events benchmark. It keeps each app within its RollupLimits (interning
 * names, props, combinations and devices, and counting what an app added), writes each bucket at the
 * width its age allows (RollupTiers), and runs the compaction's steps (rollupsCompaction.ts) between batches.
 *
 * Each request is one transaction: the messages above the stream's checkpoint, each sequence once, and
 * the checkpoint moved to the batch's last sequence. A message at or below the highest sequence before
 * it (the checkpoint, or an earlier message of the batch) is a redelivery: JetStream delivers a subject's
 * messages in order, so the original came first. A message not acknowledged within the ack wait comes
 * again while its first copy may still be in the same pulled batch: found under load, 42 events of
 * 1,000,000 counted twice.
 *
 * Loaded by Node itself (infra/sqliteThreadServe.ts): only erasable TypeScript and `.ts` imports, and
 * none of `effect` (a thread loading it costs ~35 MB more of RSS): bodies cross as the JSON the main
 * thread decoded, parsed again here. Requests cross as flat arrays of numbers and strings: cheap to clone.
 */
import type { DatabaseSync, StatementSync } from "node:sqlite"
import { workerData } from "node:worker_threads"
import type { CleanEvent, CleanMessage, SessionEnded } from "../../domain/events/CleanEvent.ts"
import { type Dimension, dimensions } from "../../domain/events/dimensions.ts"
import {
  floorsInForce, keptMinute, minuteOf, other, type RollupLimits, type RollupTiers, sessionLengthBounds, tierFloors, type TierFloors
} from "../../projections/events/rollupBuckets.ts"
import type { RollupKind } from "./rollups.ts"
import { serveSqliteThread } from "../sqliteThreadServe.ts"
import { transaction } from "../sqliteTransaction.ts"
import { type Compacted, makeCompaction, type RollupCompact } from "./rollupsCompaction.ts"
import { latencyBucket, lengthColumnNames, openRollupsFile, rowKey, tierMarks } from "./rollupsFile.ts"

export interface RollupWrite {
  readonly kind: RollupKind
  /** the stream whose checkpoint moves */
  readonly stream: string
  /** per message: its stream sequence, when the stream stored it (ms since the epoch; read for clean events), its body (a CleanMessage or a SessionEnded: marked so by the device pipeline, or decoded by the sender) */
  readonly seqs: ReadonlyArray<number>
  readonly storedAt: ReadonlyArray<number>
  readonly bodies: ReadonlyArray<string>
  /** every sequence the batch holds (messages set aside included), and its highest: the checkpoint moves to it */
  readonly batchSeqs: ReadonlyArray<number>
  readonly lastSeq: number
  /**
   * Sequences past the checkpoint the batch does not hold that the stream no longer has: all below
   * `goneBelow` (its first sequence when looked at), and `gone`. The batch is applied only if every
   * other sequence from the checkpoint to `lastSeq` is in it: a missing one still on the stream was
   * taken by another consumer and is still to come, so the batch is refused.
   */
  readonly goneBelow?: number | undefined
  readonly gone?: ReadonlyArray<number> | undefined
  /** the server clock: how old a bucket is, so how wide a row it is kept in (RollupTiers), and the day of the app's new dimension sets */
  readonly nowMillis: number
}

/**
 * `fresh`: clean events (of every new message) or sessions applied; `moved`: rows rolled into wider
 * ones, `done`: nothing is left to roll up at that time
 */
export type RollupWriteAnswer =
  | { readonly _tag: "Applied"; readonly fresh: number }
  | Compacted
  | { readonly _tag: "Failed"; readonly cause: Error }

type DimValues = ReadonlyArray<string | null>

const eventDims = (e: CleanEvent): DimValues =>
  dimensions.map((d: Dimension) =>
    d === "type" ? e.type : d === "campaignId" ? e.campaignId ?? null : d === "creativeId" ? e.creativeId ?? null : e.dims[d] ?? null)

const sessionDims = (s: SessionEnded): DimValues =>
  dimensions.map((d: Dimension) => d === "type" || d === "campaignId" || d === "creativeId" ? null : s.dims[d] ?? null)

const lengthBucket = (seconds: number) => {
  const i = sessionLengthBounds.findIndex((bound) => seconds <= bound)
  return i === -1 ? sessionLengthBounds.length : i
}

/** Sums in memory, written once per batch: `key → [params..., amount]`. */
class Sums {
  readonly rows = new Map<string, { readonly params: ReadonlyArray<number | string>; amounts: Array<number> }>()
  add(params: ReadonlyArray<number | string>, amounts: ReadonlyArray<number>) {
    const key = params.join("\u0000")
    const row = this.rows.get(key)
    if (row === undefined) this.rows.set(key, { params, amounts: [...amounts] })
    else amounts.forEach((a, i) => (row.amounts[i]! += a))
  }
  write(statement: StatementSync) {
    for (const { params, amounts } of this.rows.values()) statement.run(...params, ...amounts)
  }
}

const prepare = (db: DatabaseSync) => ({
  checkpoint: db.prepare("SELECT seq FROM rollup_checkpoints WHERE stream = ?"),
  setCheckpoint: db.prepare("INSERT OR REPLACE INTO rollup_checkpoints VALUES (?, ?)"),
  dimSet: db.prepare("SELECT id FROM dim_sets WHERE key = ?"),
  addDimSet: db.prepare(`INSERT INTO dim_sets (key, app, ${dimensions.map((d) => `"${d}"`).join(", ")}) VALUES (${dimensions.map(() => "?").join(", ")}, ?, ?) RETURNING id`),
  dimSetsAdded: db.prepare("SELECT added, bytes FROM dim_set_days WHERE app = ? AND day = ?"),
  countDimSet: db.prepare("INSERT INTO dim_set_days VALUES (?, ?, 1, ?) ON CONFLICT DO UPDATE SET added = added + 1, bytes = bytes + excluded.bytes"),
  device: db.prepare("SELECT id FROM devices WHERE key = ?"),
  addDevice: db.prepare("INSERT INTO devices (key) VALUES (?) RETURNING id"),
  customKey: db.prepare("SELECT id FROM custom_keys WHERE app = ? AND name = ? AND prop = ?"),
  addCustomKey: db.prepare("INSERT INTO custom_keys (app, name, prop) VALUES (?, ?, ?) RETURNING id"),
  customNames: db.prepare("SELECT COUNT(*) AS n FROM custom_keys WHERE app = ? AND prop = ''"),
  summedProps: db.prepare("SELECT COUNT(*) AS n FROM custom_keys WHERE app = ? AND name = ? AND prop <> ''"),
  events: db.prepare("INSERT INTO rollup_events VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET events = events + excluded.events"),
  devices: db.prepare("INSERT OR IGNORE INTO rollup_devices VALUES (?, ?, ?)"),
  custom: db.prepare("INSERT INTO custom_events VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET events = events + excluded.events"),
  customSums: db.prepare("INSERT INTO custom_totals VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET total = total + excluded.total"),
  sessions: db.prepare(
    `INSERT INTO rollup_sessions VALUES (?, ?, ?, ?, ${lengthColumnNames.map(() => "?").join(", ")}) ON CONFLICT DO UPDATE SET
     sessions = sessions + excluded.sessions, seconds = seconds + excluded.seconds,
     ${lengthColumnNames.map((c) => `${c} = ${c} + excluded.${c}`).join(", ")}`
  ),
  intake: db.prepare("INSERT INTO intake_minutes VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET events = events + excluded.events"),
  latency: db.prepare("INSERT INTO intake_latency VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET count = count + excluded.count")
})

/**
 * Keys interned to small integers, cached in memory (bounded by their characters, 16 Mi of them: cleared
 * when full, or when a transaction rolled back; an SDK decides how long they are). `missing` finds the id
 * of a key the file does not have: adds it, or answers another key's id (past a limit), or none (not counted).
 */
const interner = <Id extends number | undefined>(find: (key: string) => number | undefined, maxChars = 16 * 1024 * 1024) => {
  const cache = new Map<string, Id>()
  let chars = 0
  return {
    clear: () => {
      cache.clear()
      chars = 0
    },
    id: (key: string, missing: () => Id): Id => {
      if (cache.has(key)) return cache.get(key)!
      const id = (find(key) as Id | undefined) ?? missing()
      if (chars + key.length > maxChars) {
        cache.clear()
        chars = 0
      }
      cache.set(key, id)
      chars += key.length
      return id
    }
  }
}

/** Counts read from the file once a batch, then kept up to date in memory. */
interface Counter<A> {
  readonly clear: () => void
  readonly get: (key: string) => A
  readonly set: (key: string, value: A) => void
}

const counter = <A>(read: (key: string) => A): Counter<A> => {
  const counts = new Map<string, A>()
  return {
    clear: () => counts.clear(),
    get: (key: string) => counts.get(key) ?? read(key),
    set: (key: string, value: A) => {
      if (counts.size >= 100_000) counts.clear()
      counts.set(key, value)
    }
  }
}

/** What `add` answers if `key` has fewer than `limit` counted (and it is counted), else none: first come, up to the limit. */
const underLimit = (counts: Counter<number>, key: string, limit: number, add: () => number): number | undefined => {
  const n = counts.get(key)
  if (n >= limit) return undefined
  counts.set(key, n + 1)
  return add()
}

/** UTF-8 bytes of a combination's values: what its row keeps. */
const valueBytes = (values: DimValues) => values.reduce((n, v) => n + (v === null ? 0 : Buffer.byteLength(v)), 0)

const idOf = (row: unknown): number | undefined => (row as { id: number } | undefined)?.id

/** The dimensions an app's overflow set keeps (RollupLimits.newDimSetsPerDay): few values, none of them the SDK's choice but its type. */
const keptPastLimit = new Set<Dimension>(["type", "publisher", "category"])

const { path, limits, tiers } = workerData as { readonly path: string; readonly limits: RollupLimits; readonly tiers: RollupTiers }

serveSqliteThread<RollupWrite | RollupCompact, RollupWriteAnswer>(() => openRollupsFile(path), (db) => {
  const s = prepare(db)
  const marks = tierMarks(db)
  const dimSets = interner<number>((key) => idOf(s.dimSet.get(rowKey(key))))
  const devices = interner<number>((key) => idOf(s.device.get(rowKey(key))))
  // keys of several parts as JSON: an event's name may hold any character
  const customKeys = interner<number | undefined>((key) => idOf(s.customKey.get(...(JSON.parse(key) as [string, string, string]))))
  const dimSetsAdded = counter((key) =>
    (s.dimSetsAdded.get(...(JSON.parse(key) as [string, number])) as { added: number; bytes: number } | undefined) ?? { added: 0, bytes: 0 })
  const customNames = counter((app) => (s.customNames.get(app) as { n: number }).n)
  const summedProps = counter((key) => (s.summedProps.get(...(JSON.parse(key) as [string, string])) as { n: number }).n)
  const forgetAll = () => [dimSets, devices, customKeys, dimSetsAdded, customNames, summedProps].forEach((cache) => cache.clear())
  // the UTC day (since the epoch) new dimension sets count against
  let countingDay = 0

  const addDimSet = (key: string, app: string, values: DimValues) => idOf(s.addDimSet.get(rowKey(key), app, ...values))!
  /**
   * A combination of an app's dimension values as an id: a new one within the app's limit for the day
   * (UTC, of the server clock as the batch is counted: device times are the SDK's to choose), or the app's overflow set.
   */
  const dimSetOf = (app: string, values: DimValues) => {
    const key = JSON.stringify([app, ...values])
    return dimSets.id(key, () => {
      const day = countingDay
      const today = JSON.stringify([app, day])
      const added = dimSetsAdded.get(today)
      const bytes = valueBytes(values)
      if (added.added < limits.newDimSetsPerDay && added.bytes + bytes <= limits.newDimSetBytesPerDay) {
        s.countDimSet.run(app, day, bytes)
        dimSetsAdded.set(today, { added: added.added + 1, bytes: added.bytes + bytes })
        return addDimSet(key, app, values)
      }
      const overflow = dimensions.map((d, i) => keptPastLimit.has(d) ? values[i] ?? null : other)
      const overflowKey = JSON.stringify([app, ...overflow])
      return dimSets.id(overflowKey, () => addDimSet(overflowKey, app, overflow))
    })
  }
  const addCustomKey = (app: string, name: string, prop: string) => idOf(s.addCustomKey.get(app, name, prop))!
  /** A custom event name's id: within the app's limit, or `other`'s (`counted`: its own). */
  const customNameOf = (app: string, name: string): { readonly id: number; readonly counted: boolean } => {
    const id = customKeys.id(JSON.stringify([app, name, ""]), () => underLimit(customNames, app, limits.customNames, () => addCustomKey(app, name, "")))
    return id !== undefined ? { id, counted: true } : { id: customKeys.id(JSON.stringify([app, other, ""]), () => addCustomKey(app, other, ""))!, counted: false }
  }
  /** A numeric prop's id, if it is within its name's limit. */
  const summedPropOf = (app: string, name: string, prop: string) =>
    customKeys.id(JSON.stringify([app, name, prop]), () => underLimit(summedProps, JSON.stringify([app, name]), limits.summedProps, () => addCustomKey(app, name, prop)))

  const writeEvents = (fresh: ReadonlyArray<{ readonly event: CleanEvent; readonly storedAt: number }>, floors: TierFloors) => {
    const events = new Sums()
    const custom = new Sums()
    const customSums = new Sums()
    const intake = new Sums()
    const latency = new Sums()
    const seen = new Set<string>()
    for (const { event, storedAt } of fresh) {
      const set = dimSetOf(event.app, eventDims(event))
      const minute = keptMinute(minuteOf(event.time), floors)
      events.add([set, minute], [1])
      const deviceKey = `${event.app}\u0000${event.deviceId}`
      const device = devices.id(deviceKey, () => idOf(s.addDevice.get(rowKey(deviceKey)))!)
      const presence = `${set} ${minute} ${device}`
      if (!seen.has(presence)) {
        seen.add(presence)
        s.devices.run(set, minute, device)
      }
      if (event.type === "custom" && event.name !== undefined) {
        const name = customNameOf(event.app, event.name)
        custom.add([set, minute, name.id], [1])
        for (const [prop, value] of name.counted ? Object.entries(event.props ?? {}) : []) {
          if (typeof value !== "number") continue
          const key = summedPropOf(event.app, event.name, prop)
          if (key !== undefined) customSums.add([set, minute, key], [value])
        }
      }
      const received = Date.parse(event.receivedAt)
      const receivedMinute = Math.floor(received / 60_000)
      intake.add([event.app, receivedMinute], [1])
      latency.add([event.app, receivedMinute, latencyBucket(storedAt - received)], [1])
    }
    events.write(s.events)
    custom.write(s.custom)
    customSums.write(s.customSums)
    intake.write(s.intake)
    latency.write(s.latency)
  }

  const writeSessions = (fresh: ReadonlyArray<SessionEnded>, floors: TierFloors) => {
    const sessions = new Sums()
    for (const session of fresh) {
      const lengths: Array<number> = lengthColumnNames.map(() => 0)
      lengths[lengthBucket(session.durationSeconds)] = 1
      sessions.add([dimSetOf(session.app, sessionDims(session)), keptMinute(minuteOf(session.start), floors)], [1, session.durationSeconds, ...lengths])
    }
    sessions.write(s.sessions)
  }

  // the latest clock seen: a batch whose clock was read before a compaction's never writes behind its marks
  let latestNow = 0
  const floorsAt = (nowMillis: number) => tierFloors(tiers, (latestNow = Math.max(latestNow, nowMillis)))

  const apply = (w: RollupWrite): RollupWriteAnswer => {
    // Its horizons become marks before it writes: a process asked with longer ones (another config, a
    // rolling restart) must not ask minutes of a bucket this batch counts in its hour.
    const floors = floorsInForce(floorsAt(w.nowMillis), marks.begun())
    marks.raise("minutes", floors.minutes)
    marks.raise("hours", floors.hours)
    // The limits' counts are read again each batch (another process may have held the rollups meanwhile),
    // and a new day gives combinations past yesterday's limit their chance again.
    for (const count of [dimSetsAdded, customNames, summedProps]) count.clear()
    if (Math.floor(latestNow / 86_400_000) !== countingDay) {
      countingDay = Math.floor(latestNow / 86_400_000)
      dimSets.clear()
    }
    const after = (s.checkpoint.get(w.stream) as { seq: number } | undefined)?.seq ?? 0
    // Sequences follow each other (a consumer takes its whole stream): a batch with a hole applied over
    // what another holder of the consumer took would move the checkpoint past it, and that holder's
    // messages then counted for nothing (stop 25's outside attack: a process paused past the rollups'
    // lease, resumed, pulled from the consumer its successor had made anew; 26,500 events never counted).
    const held = new Set(w.batchSeqs)
    const gone = new Set(w.gone ?? [])
    for (let seq = Math.max(after + 1, w.goneBelow ?? 0); seq <= w.lastSeq; seq++) {
      if (held.has(seq) || gone.has(seq)) continue
      throw new Error(`${w.stream}: a batch to sequence ${w.lastSeq} without ${seq}, after the checkpoint ${after}, while the stream may still hold it: not applied, to be taken again in order`)
    }
    let high = after
    const fresh: Array<number> = []
    for (let i = 0; i < w.seqs.length; i++) {
      if (w.seqs[i]! <= high) continue
      high = w.seqs[i]!
      fresh.push(i)
    }
    let applied = 0
    if (w.kind === "events") {
      const events: Array<{ readonly event: CleanEvent; readonly storedAt: number }> = []
      for (const i of fresh) {
        // as cleanEventsOf (domain/events/CleanEvent.ts, which loads effect): a CleanBatch, or one CleanEvent written before batches
        const message = JSON.parse(w.bodies[i]!) as CleanMessage
        for (const event of "events" in message ? message.events : [message]) events.push({ event, storedAt: w.storedAt[i]! })
      }
      if (events.length > 0) writeEvents(events, floors)
      applied = events.length
    } else if (fresh.length > 0) {
      writeSessions(fresh.map((i) => JSON.parse(w.bodies[i]!) as SessionEnded), floors)
      applied = fresh.length
    }
    high = Math.max(high, w.lastSeq)
    if (high > after) s.setCheckpoint.run(w.stream, high)
    return { _tag: "Applied", fresh: applied }
  }

  const compaction = makeCompaction(db, marks, floorsAt)

  return (request) => {
    try {
      return request.kind === "compact" ? compaction.step(request) : transaction(db, () => apply(request))
    } catch (cause) {
      // the interned ids and counts of a rolled-back transaction may not be the file's
      forgetAll()
      return { _tag: "Failed", cause: cause instanceof Error ? new Error(cause.message) : new Error(String(cause)) }
    }
  }
})
