/**
 * A batch of 10,000 commands for 10,000 entities of one shard, applied end to end: one
 * `CommandBus.sendBatch` (one bus message), the shard's 10,000 entity actors activated, each command
 * decided, one multi-stream append, every command answered. The ceiling is raw `node:sqlite`: the
 * very rows the platform stored, inserted into a fresh file of the same schema and pragmas in one
 * transaction (what the commit alone would cost with nothing around it).
 */
import { join } from "node:path"
import { DatabaseSync } from "node:sqlite"
import { Context, Effect, Layer } from "effect"
import { CommandBus } from "../domain/CommandBus.ts"
import type { EntityCommand } from "../domain/entity.ts"
import { EventStore, type RecordedEvent } from "../domain/EventStore.ts"
import { defaultShards, shardOf } from "../domain/shards.ts"
import { uuidv7 } from "../domain/uuidv7.ts"
import { schema } from "../infra/eventstore/sqliteStatements.ts"
import { benchDir, layerBenchPlatform } from "./platform.ts"
import { round2 } from "./stats.ts"
import type { SummaryRow } from "./summary.ts"

const size = Number(process.env.BENCH_BATCH ?? 10_000)

const newId = () => uuidv7(Date.now(), crypto.getRandomValues(new Uint8Array(10)))

/** `count` advertiser ids of `shard`, from `from` on. */
const idsOfShard = (shard: number, count: number, from: number) => {
  const ids: Array<string> = []
  for (let i = from; ids.length < count; i++) if (shardOf(String(i), defaultShards) === shard) ids.push(String(i))
  return ids
}

const creations = (ids: ReadonlyArray<string>): Array<EntityCommand> =>
  ids.map((id) => {
    const commandId = newId()
    return { commandId, correlationId: commandId, entityType: "advertiser", entityId: id, action: { _tag: "Put", fields: { name: `Advertiser ${id}`, currency: "USD" } } }
  })

const platformRun = Effect.scoped(Effect.gen(function*() {
  const context = yield* Layer.build(layerBenchPlatform({ COMMAND_TIMEOUT: "2 minutes" }))
  const bus = Context.get(context, CommandBus)
  const store = Context.get(context, EventStore)
  // warm-up on another shard: code paths, connections, the writer thread
  yield* bus.sendBatch(creations(idsOfShard(1, 1_000, 1)))
  const ids = idsOfShard(2, size, 1)
  const commands = creations(ids)
  const started = performance.now()
  const replies = yield* bus.sendBatch(commands, { timeout: "2 minutes" })
  const seconds = (performance.now() - started) / 1000
  const accepted = replies.filter((r) => r._tag === "Accepted").length
  const stored = yield* Effect.forEach(ids, (id) => Effect.map(store.readStream(`advertiser-${id}`), (events) => events[0]!))
  return {
    commands: commands.length,
    accepted,
    seconds: round2(seconds),
    perSecond: Math.round(accepted / seconds),
    commits: new Set(stored.map((e) => e.recordedAt)).size,
    stored
  }
}))

/** The same rows, inserted with nothing around them: one transaction, synchronous=FULL, the store's schema. */
const rawRun = (rows: ReadonlyArray<RecordedEvent>) =>
  Effect.scoped(Effect.gen(function*() {
    const dir = yield* benchDir("batch-raw")
    const db = new DatabaseSync(join(dir, "events.db"))
    try {
      db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
      db.exec(schema)
      const insert = db.prepare("INSERT INTO events (event_id, stream, revision, type, data, metadata, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
      const started = performance.now()
      db.exec("BEGIN IMMEDIATE")
      for (const e of rows) insert.run(e.eventId, e.stream, e.revision, e.type, JSON.stringify(e.data), JSON.stringify(e.metadata), e.recordedAt)
      db.exec("COMMIT")
      const seconds = (performance.now() - started) / 1000
      return { rows: rows.length, seconds: round2(seconds), perSecond: Math.round(rows.length / seconds) }
    } finally {
      db.close()
    }
  }))

export const benchBatch = async () => {
  const { stored, ...platform } = await Effect.runPromise(platformRun)
  const raw = await Effect.runPromise(rawRun(stored))
  const ratio = round2(platform.perSecond / raw.perSecond)
  const result = {
    name: "batch",
    setup: { commands: size, entities: size, shard: "one (2 of 64)", command: "advertiser PUT (create)", through: "CommandBus.sendBatch: one bus message, one multi-stream append, an answer per command" },
    platform,
    ceiling: raw,
    ratio
  }
  const rows: Array<SummaryRow> = [{
    benchmark: `batch of ${size} commands for ${size} entities of one shard, end to end: commands/s`,
    figure: `${platform.perSecond}/s (${platform.seconds} s, ${platform.commits} commit${platform.commits === 1 ? "" : "s"})`,
    ceiling: `raw node:sqlite inserts of the same rows, one transaction: ${raw.perSecond}/s`,
    ratio,
    target: "none set (report)"
  }]
  return { result, rows }
}

if (import.meta.main) {
  const { result } = await benchBatch()
  console.log(JSON.stringify(result, null, 2))
}
