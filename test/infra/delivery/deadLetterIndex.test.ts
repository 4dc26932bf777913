/**
 * Finding delivery dead letters by id through the index the deliverer writes, on a real nats-server:
 * a letter is found through its entry alone (one the header scan could not find); an id the complete
 * index does not have is not there (no scan); a `pending` entry (a crash between publish and entry), a
 * stale one, and any id while letters from before the index are not indexed yet are looked for by the
 * scan; the backfill indexes those older letters; removing or purging letters forgets their entries.
 */
import { assert, layer } from "@effect/vitest"
import { Effect, Layer, Schedule } from "effect"
import type { DeadLetter } from "../../../domain/delivery/DeadLetter.ts"
import { DeadLetterQueue } from "../../../domain/delivery/DeadLetterQueue.ts"
import { DeliveryLedger } from "../../../domain/delivery/DeliveryLedger.ts"
import { BucketNames, deliveryDeadLetterSubject } from "../../../domain/subjects.ts"
import { layerJetStream as deadLetterQueue } from "../../../infra/delivery/deadLetterQueue.ts"
import { makeDeadLetterIndex } from "../../../infra/delivery/deadLetterIndex.ts"
import { layerJetStream as deliveryLedger } from "../../../infra/delivery/deliveryLedger.ts"
import { openBucket } from "../../../infra/nats/buckets.ts"
import { Nats, tryNats } from "../../../infra/nats/Nats.ts"
import { layerTestNats } from "../../fixtures/nats.ts"

const letter = (destination: string, id: string): DeadLetter => ({
  id,
  destination,
  records: [{ idKind: "cookie", userId: id, segmentId: "1", op: "add", time: "2026-11-28T12:00:00.000Z" }],
  attempts: [{ at: "2026-11-29T00:00:00.000Z", status: 400 }]
})

const layers = Layer.mergeAll(deadLetterQueue, deliveryLedger).pipe(Layer.provideMerge(layerTestNats()))

layer(layers, { excludeTestServices: true, timeout: 60_000 })("dead letters found by id", (it) => {
  it.effect("through the index; absent ids without a scan; pending, stale and not yet backfilled ones by the scan; removed and purged letters leave it", () =>
    Effect.gen(function*() {
      const ledger = yield* DeliveryLedger
      const queue = yield* DeadLetterQueue
      const { jetstream, manager } = yield* Nats
      const index = yield* makeDeadLetterIndex
      const bucket = yield* openBucket(BucketNames.deadLetterIndex, { ttl: "forever" })
      const placed = (destination: string, id: string) => Effect.map(index.find(destination, id), (p) => (p._tag === "At" ? p.seq : p._tag))
      /** A letter published as something other than the deliverer would: no index entry. */
      const publishRaw = (body: DeadLetter, msgID = body.id) =>
        tryNats("publish", () => jetstream.publish(deliveryDeadLetterSubject(body.destination), JSON.stringify(body), { msgID })).pipe(Effect.map((ack) => ack.seq))
      const found = (destination: string, ids: ReadonlyArray<string>) => Effect.map(queue.get(destination, ids), (letters) => letters.map((l) => l.sequence))

      // the empty DLQ was indexed when the queue started (in the background)
      yield* index.complete.pipe(Effect.filterOrFail((done) => done), Effect.retry(Schedule.spaced("20 millis")), Effect.timeout("10 seconds"))

      // written by the deliverer: 30 letters of one destination (ids with any character), 1 of another
      const ids = Array.from({ length: 30 }, (_, n) => `acme.0.p:${n}/ü ${n}`)
      for (const id of ids) yield* ledger.deadLetter(letter("acme", id))
      yield* ledger.deadLetter(letter("zeta", "zeta.0.p:0"))
      const at7 = yield* placed("acme", ids[7]!)
      assert.isNumber(at7)
      const got = yield* queue.get("acme", [ids[7]!, ids[3]!, "no-such-letter"])
      assert.deepStrictEqual(got.map((l) => l.deadLetter.id), [ids[3], ids[7]])
      assert.strictEqual(got[1]!.sequence, at7)
      assert.deepStrictEqual((yield* queue.get("zeta", ["zeta.0.p:0"])).map((l) => l.deadLetter.destination), ["zeta"])

      // found through its entry alone: its Nats-Msg-Id names another letter, so the header scan misses it
      const hidden = letter("acme", "hidden-by-its-header")
      const hiddenSeq = yield* publishRaw(hidden, "some-other-id")
      yield* index.stored("acme", hidden.id, hiddenSeq)
      assert.deepStrictEqual(yield* found("acme", [hidden.id]), [hiddenSeq])

      // no entry in a complete index: not there, without a scan (which would find this one by its header)
      const sneaky = letter("acme", "sneaky")
      const sneakySeq = yield* publishRaw(sneaky)
      assert.deepStrictEqual(yield* found("acme", [sneaky.id]), [])
      // pending (its publish may or may not have been stored): the scan finds it
      yield* index.reserve("acme", sneaky.id)
      assert.deepStrictEqual(yield* found("acme", [sneaky.id]), [sneakySeq])

      // a stale entry (naming another letter) is not believed: the scan finds the real one
      const moved = letter("acme", "moved")
      const movedSeq = yield* publishRaw(moved)
      yield* index.stored("acme", moved.id, hiddenSeq)
      assert.deepStrictEqual(yield* found("acme", [moved.id]), [movedSeq])

      // letters from before the index: looked for by scanning until the backfill indexed them
      yield* tryNats("forget backfill", () => bucket.purge("backfilled"))
      const older = letter("acme", "from-before-the-index")
      const olderSeq = yield* publishRaw(older)
      const headerless = letter("acme", "no-header")
      const headerlessSeq = yield* tryNats("publish", () => jetstream.publish(deliveryDeadLetterSubject("acme"), JSON.stringify(headerless))).pipe(Effect.map((ack) => ack.seq))
      assert.deepStrictEqual(yield* found("acme", [older.id]), [olderSeq])
      yield* index.backfill
      assert.isTrue(yield* index.complete)
      assert.strictEqual(yield* placed("acme", older.id), olderSeq)
      assert.strictEqual(yield* placed("acme", headerless.id), headerlessSeq)
      assert.strictEqual(yield* placed("acme", ids[7]!), at7)
      assert.deepStrictEqual(yield* found("acme", [older.id, headerless.id]), [olderSeq, headerlessSeq])

      // removed: gone from the queue and from the index, which keeps nothing of it (no purge marker)
      const indexSize = Effect.map(tryNats("index info", () => manager.streams.info(`KV_${BucketNames.deadLetterIndex}`)), (info) => info.state.messages)
      const entriesBefore = yield* indexSize
      yield* queue.remove("acme", got[0]!)
      assert.strictEqual(yield* placed("acme", ids[3]!), "Absent")
      assert.strictEqual(yield* indexSize, entriesBefore - 1)
      assert.deepStrictEqual(yield* queue.get("acme", [ids[3]!]), [])

      // purged up to a bound (the destination deleted, then created again): the entries of the letters
      // stored before it go (beside the purge), the later letter's stays, so does the other destination's
      const bound = yield* queue.nextSequence
      yield* ledger.deadLetter(letter("acme", "after-the-bound"))
      yield* queue.purge("acme", bound)
      yield* placed("acme", ids[7]!).pipe(Effect.filterOrFail((p) => p === "Absent"), Effect.retry(Schedule.spaced("20 millis")), Effect.timeout("10 seconds"))
      assert.deepStrictEqual((yield* queue.get("acme", ["after-the-bound", ids[7]!])).map((l) => l.deadLetter.id), ["after-the-bound"])
      assert.isNumber(yield* placed("zeta", "zeta.0.p:0"))
      // purged without a bound: every entry of the destination
      yield* queue.purge("acme")
      yield* placed("acme", "after-the-bound").pipe(Effect.filterOrFail((p) => p === "Absent"), Effect.retry(Schedule.spaced("20 millis")), Effect.timeout("10 seconds"))
      assert.deepStrictEqual(yield* queue.get("acme", ["after-the-bound"]), [])
    }))
})
