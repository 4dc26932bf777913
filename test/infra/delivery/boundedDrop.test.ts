/**
 * What a DELETE drops is bounded by where each store stood before its command: DELIVER and DLQ purge
 * only what they stored before a sequence taken then, and the package outbox drops only rows written
 * before then. So a destination created again under the id meanwhile keeps its chunks and dead letters
 * (before, the DELETE's purge, running after such a creation, took them too).
 */
import { join } from "node:path"
import { DatabaseSync } from "node:sqlite"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { DeadLetterQueue } from "../../../domain/delivery/DeadLetterQueue.ts"
import { DeliveryBacklog } from "../../../domain/delivery/DeliveryBacklog.ts"
import { deliverSubject, deliveryDeadLetterSubject } from "../../../domain/subjects.ts"
import { layerJetStream as deadLetterQueue } from "../../../infra/delivery/deadLetterQueue.ts"
import { layerJetStream as deliveryBacklog } from "../../../infra/delivery/deliveryBacklog.ts"
import { PackagesDb } from "../../../infra/delivery/packagesDb.ts"
import { Nats } from "../../../infra/nats/Nats.ts"
import { layerTestNats } from "../../fixtures/nats.ts"
import { tempDir } from "../../fixtures/tempDir.ts"

const chunk = (seq: number, incarnation: number) =>
  ({ destination: "d-bound", lane: 0, packageId: "continuous", kind: "continuous", seq, incarnation, records: [] })

describe("a deleted destination's drop, bounded", () => {
  it.live("DELIVER and DLQ keep what was stored after the bound; so does the outbox", () =>
    Effect.gen(function*() {
      const { jetstream } = yield* Nats
      const backlog = yield* DeliveryBacklog
      const letters = yield* DeadLetterQueue
      const publish = (subject: string, body: unknown, id: string) => Effect.promise(() => jetstream.publish(subject, JSON.stringify(body), { msgID: id }))

      for (const seq of [0, 1]) yield* publish(deliverSubject("d-bound", 0), chunk(seq, 1), `old-${seq}`)
      yield* publish(deliveryDeadLetterSubject("d-bound"), { id: "old-letter" }, "old-letter")
      const deliverBound = yield* backlog.nextSequence
      const letterBound = yield* letters.nextSequence
      // the destination created again: its first chunk and dead letter
      yield* publish(deliverSubject("d-bound", 0), chunk(0, 2), "new-0")
      yield* publish(deliveryDeadLetterSubject("d-bound"), { id: "new-letter" }, "new-letter")

      assert.strictEqual(yield* backlog.purge("d-bound", deliverBound), 2)
      assert.strictEqual(yield* letters.purge("d-bound", letterBound), 1)
      assert.strictEqual((yield* backlog.backlog("d-bound")).chunks, 1)
      assert.strictEqual(yield* letters.count("d-bound"), 1)
      // unbounded, everything goes
      assert.strictEqual(yield* backlog.purge("d-bound"), 1)
      assert.strictEqual(yield* letters.purge("d-bound"), 1)

      const path = join(yield* tempDir("bounded-drop"), "delivery.db")
      yield* Effect.gen(function*() {
        const db = yield* PackagesDb
        const insert = (seq: number, incarnation: number) =>
          Effect.acquireUseRelease(
            Effect.sync(() => new DatabaseSync(path)),
            (raw) => Effect.sync(() => raw.prepare("INSERT INTO delivery_outbox (subject, msg_id, chunk, records, destination, lanes) VALUES (?, ?, ?, 0, 'd-bound', 1)")
              .run(deliverSubject("d-bound", 0), `m-${incarnation}-${seq}`, JSON.stringify(chunk(seq, incarnation)))),
            (raw) => Effect.sync(() => raw.close()))
        yield* insert(0, 1)
        yield* insert(1, 1)
        const outboxBound = yield* db.nextRow
        yield* insert(0, 2)
        assert.deepStrictEqual(yield* db.drop("d-bound", outboxBound), { chunks: 2, records: 0 })
        assert.deepStrictEqual((yield* db.pending("d-bound", 10)).map((row) => row.msgId), ["m-2-0"])
        // every row gone, the next one is still placed after them
        yield* db.drop("d-bound")
        assert.isAbove(yield* db.nextRow, outboxBound)
      }).pipe(Effect.provide(PackagesDb.layer({ path, maxRecords: 2 })))
    }).pipe(Effect.provide(Layer.mergeAll(deliveryBacklog, deadLetterQueue).pipe(Layer.provideMerge(layerTestNats()))), Effect.scoped), { timeout: 60_000 })
})
