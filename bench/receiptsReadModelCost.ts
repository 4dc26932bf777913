/**
 * What the receipts read model costs per receipt, apart from the rest of the platform (not part of
 * `npm run bench`; used to compare two versions back to back on a shared machine): a nats-server in
 * its own process, BENCH_RECEIPTS (default 160,000) receipts of one record each put on RECEIPTS in
 * messages of BENCH_RECEIPTS_PER_MESSAGE (default 16, a deliverer's round), then the read model
 * (infra/readmodel/receiptsSqlite.ts) run in this process until its checkpoint reaches the last one.
 * Prints this process's CPU µs per receipt while it applied them.
 *
 *   node bench/receiptsReadModelCost.ts
 */
import { join } from "node:path"
import { DatabaseSync } from "node:sqlite"
import { Effect, Layer, Schedule } from "effect"
import { receiptSubject } from "../domain/subjects.ts"
import { Nats, tryNats } from "../infra/nats/Nats.ts"
import { layerSqlite } from "../infra/readmodel/receiptsSqlite.ts"
import { layerTestNats } from "../test/fixtures/nats.ts"
import { tempDir } from "../test/fixtures/tempDir.ts"
import { round2 } from "./stats.ts"

const receipts = Number(process.env.BENCH_RECEIPTS ?? 160_000)
const perMessage = Number(process.env.BENCH_RECEIPTS_PER_MESSAGE ?? 16)

const run = Effect.gen(function*() {
  const { jetstream } = yield* Nats
  const messages = Math.ceil(receipts / perMessage)
  let lastSeq = 0
  for (let m = 0; m < messages; m++) {
    const batch = {
      destination: "fast",
      receipts: Array.from({ length: perMessage }, (_, i) => ({
        requestId: `fast.0.bench.${m}.${i}`,
        status: 200,
        at: new Date(Date.UTC(2026, 10, 28, 12) + m).toISOString(),
        records: [{ idKind: "cookie", userId: `fast-u${m * perMessage + i}`, segmentId: "1", op: "add", time: "2026-11-28T12:00:00.000Z" }]
      }))
    }
    lastSeq = (yield* tryNats("publish", () => jetstream.publish(receiptSubject("fast"), JSON.stringify(batch)))).seq
  }
  const path = join(yield* tempDir("receipts-cost"), "delivery-receipts.db")
  const cpu = process.cpuUsage()
  const started = performance.now()
  yield* Effect.scoped(Effect.gen(function*() {
    yield* Layer.build(layerSqlite({ path }))
    const db = new DatabaseSync(path, { readOnly: true })
    yield* Effect.sync(() => Number((db.prepare(`SELECT value FROM receipts_meta WHERE key = 'checkpoint'`).get() as { value: string } | undefined)?.value ?? 0)).pipe(
      Effect.filterOrFail((checkpoint) => checkpoint >= lastSeq, () => "behind" as const),
      Effect.retry(Schedule.spaced("20 millis"))
    )
    db.close()
  }))
  const used = process.cpuUsage(cpu)
  const seconds = (performance.now() - started) / 1000
  console.log(JSON.stringify({
    receipts: messages * perMessage,
    perMessage,
    seconds: round2(seconds),
    cpuMicrosPerReceipt: round2((used.user + used.system) / (messages * perMessage)),
    userMicrosPerReceipt: round2(used.user / (messages * perMessage))
  }))
})

Effect.runPromise(run.pipe(Effect.provide(layerTestNats()), Effect.scoped)).then(() => process.exit(0), (error) => {
  console.error(error)
  process.exit(1)
})
