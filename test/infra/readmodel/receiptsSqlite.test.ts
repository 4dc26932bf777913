/**
 * The delivery read model on a real nats-server: it applies what RECEIPTS holds (batches of receipts,
 * and the single receipts written before batches), and when its consumer is gone (deleted by an operator, or expired), it is made again from the checkpoint kept
 * in the same SQLite transaction as the rows, so nothing after it is missed.
 */
import { DatabaseSync } from "node:sqlite"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import type { Receipt } from "../../../domain/delivery/Receipt.ts"
import { profileId } from "../../../domain/ingest/LoaderRecord.ts"
import { receiptSubject, StreamNames } from "../../../domain/subjects.ts"
import { Nats } from "../../../infra/nats/Nats.ts"
import { layerSqlite } from "../../../infra/readmodel/receiptsSqlite.ts"
import { DeliveryReadModel } from "../../../projections/delivery/receipts.ts"
import { eventually } from "../../fixtures/http.ts"
import { layerTestNats } from "../../fixtures/nats.ts"
import { tempDir } from "../../fixtures/tempDir.ts"

const receipt = (userId: string, at: string): Receipt => ({
  destination: "dsp", requestId: `req-${userId}`, status: 200, at,
  records: [{ idKind: "cookie", userId, segmentId: "10", op: "add", time: "2026-11-01T10:00:00Z" }]
})

const nats = Effect.gen(function*() {
  return yield* Nats
})
const publish = (r: Receipt) => Effect.flatMap(nats, ({ jetstream }) => Effect.promise(() => jetstream.publish(receiptSubject(r.destination), JSON.stringify(r))))

const deliveriesOf = (userId: string) =>
  Effect.gen(function*() {
    return yield* (yield* DeliveryReadModel).deliveriesOf(profileId("cookie", userId))
  })

describe("the delivery read model", () => {
  it.live("resumes after its checkpoint when its consumer is made again", () =>
    Effect.gen(function*() {
      const path = join(yield* tempDir("receipts"), "delivery-receipts.db")
      const model = () => Layer.fresh(layerSqlite({ path }))
      yield* publish(receipt("u1", "2026-11-01T10:00:01Z"))
      yield* eventually(deliveriesOf("u1"), (m) => m.size === 1).pipe(Effect.provide(model()))
      const db = new DatabaseSync(path)
      const consumer = (db.prepare(`SELECT value FROM receipts_meta WHERE key = 'consumer'`).get() as { value: string }).value
      const checkpoint = (db.prepare(`SELECT value FROM receipts_meta WHERE key = 'checkpoint'`).get() as { value: string }).value
      db.close()
      assert.strictEqual(checkpoint, "1")
      // the consumer is lost while no process runs; more receipts arrive
      yield* Effect.flatMap(nats, ({ manager }) => Effect.promise(() => manager.consumers.delete(StreamNames.receipts, consumer)))
      yield* publish(receipt("u2", "2026-11-01T10:00:02Z"))
      const seen = yield* Effect.gen(function*() {
        const u2 = yield* eventually(deliveriesOf("u2"), (m) => m.size === 1)
        return { u1: yield* deliveriesOf("u1"), u2 }
      }).pipe(Effect.provide(model()))
      assert.deepStrictEqual(seen.u1.get("10"), [{ destination: "dsp", at: "2026-11-01T10:00:01Z", status: 200 }])
      assert.deepStrictEqual(seen.u2.get("10"), [{ destination: "dsp", at: "2026-11-01T10:00:02Z", status: 200 }])
      // made again from after the checkpoint, not from the start
      const info = yield* Effect.flatMap(nats, ({ manager }) => Effect.promise(() => manager.consumers.info(StreamNames.receipts, consumer)))
      assert.strictEqual(info.config.opt_start_seq, 2)
    }).pipe(Effect.provide(layerTestNats()), Effect.scoped), { timeout: 60_000 })

  it.live("applies every receipt of a batch, beside single receipts", () =>
    Effect.gen(function*() {
      const path = join(yield* tempDir("receipts"), "delivery-receipts.db")
      yield* publish(receipt("u1", "2026-11-01T10:00:01Z"))
      const batch = { destination: "dsp", receipts: [receipt("u2", "2026-11-01T10:00:02Z"), receipt("u3", "2026-11-01T10:00:03Z")].map(({ destination: _, ...r }) => r) }
      yield* Effect.flatMap(nats, ({ jetstream }) => Effect.promise(() => jetstream.publish(receiptSubject("dsp"), JSON.stringify(batch))))
      const seen = yield* Effect.gen(function*() {
        yield* eventually(deliveriesOf("u3"), (m) => m.size === 1)
        return yield* Effect.forEach(["u1", "u2", "u3"], (u) => Effect.map(deliveriesOf(u), (m) => m.get("10")))
      }).pipe(Effect.provide(layerSqlite({ path })))
      assert.deepStrictEqual(seen, [1, 2, 3].map((i) => [{ destination: "dsp", at: `2026-11-01T10:00:0${i}Z`, status: 200 }]))
    }).pipe(Effect.provide(layerTestNats()), Effect.scoped), { timeout: 60_000 })
})
