/**
 * DeviceStore on SQLite (`DATA_DIR/devices.db`, shared by the processes on one DATA_DIR, fsynced at
 * every commit). Reads run on the main thread's connection; writes on a writer thread
 * (deviceWriterThread.ts), so a commit's statements and fsync do not hold the event loop. Compact
 * rows: a device is a 16-byte key in WITHOUT ROWID tables (no hidden rowid, no second index); its dedupe state is the varint blob of domain/events/dedupe.ts (1–3 bytes for a
 * device with no gap), kept apart from its sessions so the dedupe footprint is measured alone. Open
 * sessions are found by a partial index over the devices that have one. Outbox ids come from
 * AUTOINCREMENT, so they never go back even once every row was published and deleted.
 */
import type { DatabaseSync, StatementSync } from "node:sqlite"
import { Effect, Layer } from "effect"
import type { OutboxKind, OutboxRow, Settled } from "../../domain/events/CleanOutbox.ts"
import { type DedupeState, decode as decodeDedupe, encode as encodeDedupe } from "../../domain/events/dedupe.ts"
import { type DeviceCommit, type DeviceSessions, type DeviceState, DeviceStore, DeviceStoreError } from "../../domain/events/DeviceStore.ts"
import { openSharedSqlite } from "../ingest/sqliteFile.ts"
import { startSqliteThread } from "../sqliteThread.ts"
import type { DeviceRequest, DeviceWrite, DeviceWriteAnswer } from "./deviceWriterThread.ts"

/** devices.db's tables and indexes. */
export const schema = `
  CREATE TABLE IF NOT EXISTS dedupe (device BLOB PRIMARY KEY, state BLOB NOT NULL) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS sessions (device BLOB PRIMARY KEY, app TEXT NOT NULL, touched INTEGER, state TEXT NOT NULL) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS sessions_idle ON sessions (app, touched) WHERE touched IS NOT NULL;
  CREATE TABLE IF NOT EXISTS consumed (app TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (app, seq)) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, app TEXT NOT NULL, kind TEXT NOT NULL, body TEXT NOT NULL);
  CREATE INDEX IF NOT EXISTS outbox_app ON outbox (app, id);
  CREATE TABLE IF NOT EXISTS outbox_fences (app TEXT NOT NULL, kind TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (app, kind)) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS app_claims (app TEXT PRIMARY KEY, epoch INTEGER NOT NULL) WITHOUT ROWID;
`

/**
 * The apps with an open session or an outbox row: one index seek an app (from the least, then the next
 * after it), not a pass over every open session. A DISTINCT over them ran every second on the event loop
 * and took 555–644 ms at 6.7 million open sessions (stop 24's outside attack: one SDK key sending opens
 * from new device ids).
 */
export const appsWithWorkSql = `WITH RECURSIVE
  open(app) AS (SELECT (SELECT MIN(app) FROM sessions WHERE touched IS NOT NULL)
    UNION ALL SELECT (SELECT MIN(app) FROM sessions WHERE touched IS NOT NULL AND app > open.app) FROM open WHERE open.app IS NOT NULL),
  waiting(app) AS (SELECT (SELECT MIN(app) FROM outbox)
    UNION ALL SELECT (SELECT MIN(app) FROM outbox WHERE app > waiting.app) FROM waiting WHERE waiting.app IS NOT NULL)
  SELECT app FROM open WHERE app IS NOT NULL UNION SELECT app FROM waiting WHERE app IS NOT NULL`

const keyBytes = (hex: string) => Buffer.from(hex, "hex")
const loadChunk = 100
const writerThread = new URL("./deviceWriterThread.ts", import.meta.url)

interface Loaded {
  dedupe?: DedupeState
  sessions?: DeviceSessions
}

const make = (path: string, cacheBytes: number | undefined) =>
  Effect.gen(function*() {
    const db: DatabaseSync = yield* Effect.acquireRelease(
      Effect.try({ try: () => openSharedSqlite(path), catch: (cause) => new DeviceStoreError({ operation: "open", cause }) }),
      (db) => Effect.sync(() => db.close())
    )
    db.exec(schema)
    if (cacheBytes !== undefined) db.exec(`PRAGMA cache_size = -${Math.ceil(cacheBytes / 1024)}`)
    const run = <A>(operation: string, f: () => A) => Effect.try({ try: f, catch: (cause) => new DeviceStoreError({ operation, cause }) })

    // Up to `loadChunk` devices a statement: with a memory bound smaller than the devices, a load per
    // event's device is the usual case, and a statement call costs more than its index lookup (measured:
    // ~14 µs a device by one call for both states, ~8 µs in chunks of 100).
    const chunkStatements = new Map<number, { readonly dedupe: StatementSync; readonly sessions: StatementSync }>()
    const selectChunk = (size: number) => {
      const found = chunkStatements.get(size)
      if (found !== undefined) return found
      const list = Array.from({ length: size }, () => "?").join(", ")
      const made = {
        dedupe: db.prepare(`SELECT device, state FROM dedupe WHERE device IN (${list})`),
        sessions: db.prepare(`SELECT device, state FROM sessions WHERE device IN (${list})`)
      }
      // rows as [device, state]: an object a row, with its keys, cost as much as the lookup itself
      made.dedupe.setReturnArrays(true)
      made.sessions.setReturnArrays(true)
      chunkStatements.set(size, made)
      return made
    }
    const selectConsumed = db.prepare("SELECT 1 AS found FROM consumed WHERE app = ? AND seq = ?")
    const selectIdle = db.prepare("SELECT device FROM sessions WHERE app = ? AND touched IS NOT NULL AND touched <= ? LIMIT ?")
    const selectAppsWithWork = db.prepare(appsWithWorkSql)
    const selectOutbox = db.prepare("SELECT id, kind, body FROM outbox WHERE app = ? AND id > ? ORDER BY id LIMIT ?")
    const selectFences = db.prepare("SELECT kind, seq FROM outbox_fences WHERE app = ?")

    // Writes go through the writer thread, on a file that now has its tables.
    const writer = yield* startSqliteThread<DeviceRequest, DeviceWriteAnswer>(writerThread, { path, cacheBytes }, {
      name: "the device store's writer thread",
      failed: (cause) => ({ _tag: "Failed", cause })
    })
    yield* Effect.mapError(writer.opened, (cause) => new DeviceStoreError({ operation: "open", cause }))
    /** Sends `request`; its answer, which must be the one tagged `tag` (the thread's failure, or another, fails). */
    const ask = <Tag extends DeviceWriteAnswer["_tag"]>(operation: string, request: DeviceRequest, tag: Tag) =>
      Effect.flatMap(writer.request(request), (answer) =>
        answer._tag === tag
          ? Effect.succeed(answer as Extract<DeviceWriteAnswer, { readonly _tag: Tag }>)
          : Effect.fail(new DeviceStoreError({ operation, cause: answer._tag === "Failed" ? answer.cause : answer })))
    const write = (operation: string, w: DeviceWrite) => Effect.asVoid(ask(operation, w, "Done"))
    /** A write of nothing, which a commit or a settle fills in. */
    const nothing = (app: string): DeviceWrite => ({
      app, epoch: null, dedupeKeys: [], dedupeStates: [], sessionKeys: [], sessionTouched: [], sessionStates: [], outbox: [], consumed: [], acknowledged: [], published: [], fences: []
    })
    const settledRows = ({ fences, ids }: Settled) => ({ published: ids, fences: Object.entries(fences).flat() })

    const load = (keys: ReadonlyArray<string>) =>
      run("load", () => {
        const states = new Map<string, Loaded>()
        const entry = (device: Uint8Array): Loaded => {
          const key = Buffer.from(device.buffer, device.byteOffset, device.byteLength).toString("hex")
          const found = states.get(key)
          if (found !== undefined) return found
          const made: Loaded = {}
          states.set(key, made)
          return made
        }
        for (let i = 0; i < keys.length; i += loadChunk) {
          const chunk = keys.slice(i, i + loadChunk).map(keyBytes)
          const statements = selectChunk(chunk.length)
          for (const [device, state] of statements.dedupe.all(...chunk) as unknown as Array<[Uint8Array, Uint8Array]>) {
            entry(device).dedupe = decodeDedupe(state)
          }
          for (const [device, state] of statements.sessions.all(...chunk) as unknown as Array<[Uint8Array, string]>) {
            entry(device).sessions = JSON.parse(state) as DeviceSessions
          }
        }
        return states as ReadonlyMap<string, Partial<DeviceState>>
      })

    const commit = (batch: DeviceCommit) =>
      Effect.suspend(() => {
        const sessions = [...batch.sessions]
        return write("commit", {
          ...nothing(batch.app),
          epoch: batch.epoch ?? null,
          dedupeKeys: [...batch.dedupe.keys()],
          dedupeStates: Array.from(batch.dedupe.values(), encodeDedupe),
          sessionKeys: sessions.map(([key]) => key),
          sessionTouched: sessions.map(([, s]) => s.state.open?.touched ?? null),
          sessionStates: sessions.map(([, s]) => JSON.stringify(s)),
          outbox: batch.outbox.flatMap((row) => [row.kind, row.body]),
          consumed: batch.consumed,
          acknowledged: batch.acknowledged,
          ...(batch.published === undefined ? {} : settledRows(batch.published))
        })
      })

    // Through the writer thread, behind any write of this process still in it (a predecessor's commit).
    const claim = (app: string) => Effect.map(ask("claim", { claim: app }, "Claimed"), (answer) => answer.epoch)

    const consumed = (app: string, seqs: ReadonlyArray<number>) =>
      run("consumed", () => new Set(seqs.filter((seq) => selectConsumed.get(app, seq) !== undefined)) as ReadonlySet<number>)

    const idle = (app: string, before: number, limit: number) =>
      run("idle", () => (selectIdle.all(app, before, limit) as Array<{ device: Uint8Array }>).map((row) => Buffer.from(row.device).toString("hex")))

    const appsWithWork = run("apps with work", () => (selectAppsWithWork.all() as Array<{ app: string }>).map((row) => row.app))

    const outbox = (app: string, afterId: number, limit: number, maxChars: number) =>
      run("outbox", () => {
        const rows: Array<OutboxRow> = []
        let chars = 0
        for (const row of selectOutbox.iterate(app, afterId, limit) as Iterable<{ id: number; kind: string; body: string }>) {
          rows.push({ id: Number(row.id), kind: row.kind as OutboxKind, body: row.body })
          chars += row.body.length
          if (chars >= maxChars) break
        }
        return rows
      })

    const published = (app: string, rows: Settled) =>
      rows.ids.length === 0 && Object.keys(rows.fences).length === 0
        ? Effect.void
        : write("published", { ...nothing(app), ...settledRows(rows) })

    const fences = (app: string) =>
      run("fences", () =>
        Object.fromEntries((selectFences.all(app) as Array<{ kind: string; seq: number }>).map((row) => [row.kind, Number(row.seq)])) as Partial<Record<OutboxKind, number>>)

    // On the writer thread: a pass over the whole table (340–450 ms at 6.7 million devices), not on the event loop.
    const footprint = Effect.map(ask("footprint", { footprint: true }, "Footprint"), ({ bytes, devices }) => ({ bytes, devices }))

    return DeviceStore.of({ load, claim, commit, consumed, idle, appsWithWork, outbox, published, fences, footprint })
  })

/** `cacheBytes`: SQLite's page cache of the read connection and of the writer thread's (its default, 2 MiB, when absent). */
export const layerSqlite = (options: { readonly path: string; readonly cacheBytes?: number }) => Layer.effect(DeviceStore, make(options.path, options.cacheBytes))
