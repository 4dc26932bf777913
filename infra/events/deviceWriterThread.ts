/**
 * The device store's writer thread (infra/sqliteThread.ts): it owns `devices.db`'s write connection,
 * so a commit's statements and its fsync run beside the device pipeline's stages instead of holding
 * the event loop. Each request is one transaction: a batch's device states, outbox rows, consumed and
 * acknowledged EVENTS sequences, and the outbox rows published since (deleted, their fences raised),
 * refused when another pipeline claimed the app since; or a pipeline's claim of an app; or the dedupe
 * table's footprint (a pass over it, off the event loop).
 * Loaded by Node itself (infra/sqliteThreadServe.ts): only erasable TypeScript and `.ts` imports.
 *
 * Requests cross the thread boundary as flat arrays (keys as hex, states already encoded): cheap to
 * clone, and what SQLite stores.
 */
import { workerData } from "node:worker_threads"
import { openSharedSqlite } from "../ingest/sqliteFile.ts"
import { serveSqliteThread } from "../sqliteThreadServe.ts"
import { transaction } from "../sqliteTransaction.ts"

export interface DeviceWrite {
  readonly app: string
  /** the writer's claim of the app: the transaction is refused when the app's claim is another (none: unchecked) */
  readonly epoch: number | null
  /** per device whose dedupe state changed: its key (hex); its state, encoded, at the same index */
  readonly dedupeKeys: ReadonlyArray<string>
  readonly dedupeStates: ReadonlyArray<Uint8Array>
  /** per device whose sessions changed: its key (hex), when its open session last moved (null: none open), its sessions as JSON */
  readonly sessionKeys: ReadonlyArray<string>
  readonly sessionTouched: ReadonlyArray<number | null>
  readonly sessionStates: ReadonlyArray<string>
  /** outbox rows to add: kind, body, kind, body, … */
  readonly outbox: ReadonlyArray<string>
  readonly consumed: ReadonlyArray<number>
  readonly acknowledged: ReadonlyArray<number>
  /** outbox rows published: deleted */
  readonly published: ReadonlyArray<number>
  /** each outbox kind's fence: kind, stream sequence, kind, … */
  readonly fences: ReadonlyArray<string | number>
}

/** A pipeline claiming an app: the app's epoch goes up by one. */
export interface DeviceClaim {
  readonly claim: string
}

/** The dedupe table's bytes (its pages) and devices: a pass over the table, kept off the event loop. */
export interface DeviceFootprint {
  readonly footprint: true
}

export type DeviceRequest = DeviceWrite | DeviceClaim | DeviceFootprint

export type DeviceWriteAnswer =
  | { readonly _tag: "Done" }
  | { readonly _tag: "Claimed"; readonly epoch: number }
  | { readonly _tag: "Footprint"; readonly bytes: number; readonly devices: number }
  | { readonly _tag: "Failed"; readonly cause: unknown }

const keyBytes = (hex: string) => Buffer.from(hex, "hex")

const { path, cacheBytes } = workerData as { readonly path: string; readonly cacheBytes: number | undefined }

serveSqliteThread<DeviceRequest, DeviceWriteAnswer>(() => openSharedSqlite(path), (db) => {
  // The same page cache as the read connection's: the upserts of a batch's devices walk the tables'
  // pages, which at 50,000 devices outgrow SQLite's 2 MiB default (the writer thread 17.1 → 14.3 CPU-s
  // over the benchmark's 1,100,000 events).
  if (cacheBytes !== undefined) db.exec(`PRAGMA cache_size = -${Math.ceil(cacheBytes / 1024)}`)
  const upsertDedupe = db.prepare("INSERT INTO dedupe (device, state) VALUES (?, ?) ON CONFLICT (device) DO UPDATE SET state = excluded.state")
  const upsertSessions = db.prepare(
    "INSERT INTO sessions (device, app, touched, state) VALUES (?, ?, ?, ?) ON CONFLICT (device) DO UPDATE SET touched = excluded.touched, state = excluded.state"
  )
  const insertOutbox = db.prepare("INSERT INTO outbox (app, kind, body) VALUES (?, ?, ?)")
  const insertConsumed = db.prepare("INSERT OR IGNORE INTO consumed (app, seq) VALUES (?, ?)")
  const deleteConsumed = db.prepare("DELETE FROM consumed WHERE app = ? AND seq = ?")
  const deleteOutbox = db.prepare("DELETE FROM outbox WHERE id = ?")
  const raiseFence = db.prepare(
    "INSERT INTO outbox_fences (app, kind, seq) VALUES (?, ?, ?) ON CONFLICT (app, kind) DO UPDATE SET seq = max(seq, excluded.seq)"
  )
  const claim = db.prepare("INSERT INTO app_claims (app, epoch) VALUES (?, 1) ON CONFLICT (app) DO UPDATE SET epoch = epoch + 1 RETURNING epoch")
  const claimOf = db.prepare("SELECT epoch FROM app_claims WHERE app = ?")
  const pages = db.prepare("SELECT COALESCE(SUM(pgsize), 0) AS bytes FROM dbstat WHERE name = 'dedupe'")
  const devices = db.prepare("SELECT COUNT(*) AS n FROM dedupe")
  const write = (w: DeviceWrite) => {
    if (w.epoch !== null) {
      const current = Number((claimOf.get(w.app) as { epoch: number } | undefined)?.epoch ?? 0)
      if (current !== w.epoch) throw new Error(`app ${w.app}'s device pipeline was claimed again (epoch ${current}, this one's ${w.epoch}): the batch is not committed`)
    }
    for (let i = 0; i < w.dedupeKeys.length; i++) upsertDedupe.run(keyBytes(w.dedupeKeys[i]!), w.dedupeStates[i]!)
    for (let i = 0; i < w.sessionKeys.length; i++) upsertSessions.run(keyBytes(w.sessionKeys[i]!), w.app, w.sessionTouched[i]!, w.sessionStates[i]!)
    for (let i = 0; i < w.outbox.length; i += 2) insertOutbox.run(w.app, w.outbox[i]!, w.outbox[i + 1]!)
    for (const seq of w.consumed) insertConsumed.run(w.app, seq)
    for (const seq of w.acknowledged) deleteConsumed.run(w.app, seq)
    for (const id of w.published) deleteOutbox.run(id)
    for (let i = 0; i < w.fences.length; i += 2) raiseFence.run(w.app, w.fences[i]!, w.fences[i + 1]!)
  }
  return (w) => {
    try {
      if ("footprint" in w) {
        return { _tag: "Footprint", bytes: Number((pages.get() as { bytes: number }).bytes), devices: Number((devices.get() as { n: number }).n) }
      }
      if ("claim" in w) return { _tag: "Claimed", epoch: transaction(db, () => Number((claim.get(w.claim) as { epoch: number }).epoch)) }
      transaction(db, () => write(w))
      return { _tag: "Done" }
    } catch (cause) {
      return { _tag: "Failed", cause: cause instanceof Error ? new Error(cause.message) : new Error(String(cause)) }
    }
  }
})
