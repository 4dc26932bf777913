/**
 * The AckedPublisher on a real nats-server: hundreds of publishes at once each resolve once RECEIPTS
 * stored them (every one there, once, with its Nats-Msg-Id); a repeated id resolves as a duplicate
 * without a second copy; a publish expecting a last sequence the stream is not at rejects, as does a
 * subject no stream takes (no responders) instead of hanging.
 */
import { assert, layer } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { receiptSubject, StreamNames } from "../../domain/subjects.ts"
import { makeAckedPublisher } from "../../infra/nats/ackedPublisher.ts"
import { Nats, tryNats } from "../../infra/nats/Nats.ts"
import { layerTestNats } from "../fixtures/nats.ts"

layer(layerTestNats(), { excludeTestServices: true, timeout: 60_000 })("the acked publisher", (it) => {
  it.effect("resolves each publish once stored, drops a repeated id, rejects a wrong expected sequence and what no stream takes", () =>
    Effect.gen(function*() {
      const { connection, manager } = yield* Nats
      const publisher = yield* makeAckedPublisher(connection, 5_000)
      const ids = Array.from({ length: 500 }, (_, i) => `acme.0.continuous.0.${i}`)
      const acks = yield* tryNats("publish", () => Promise.all(ids.map((id) => publisher.publish(receiptSubject("acme"), JSON.stringify({ id }), { "Nats-Msg-Id": id }))))
      // each resolves with its stream sequence (the device outbox fences on them)
      assert.deepStrictEqual(acks.map((ack) => ack.seq).sort((a, b) => a - b), ids.map((_, i) => i + 1))
      assert.isTrue(acks.every((ack) => !ack.duplicate))
      const stored = yield* tryNats("info", () => manager.streams.info(StreamNames.receipts))
      assert.strictEqual(stored.state.messages, 500)
      const last = yield* tryNats("last", () => manager.streams.getMessage(StreamNames.receipts, { last_by_subj: receiptSubject("acme") }))
      assert.strictEqual(last?.header.get("Nats-Msg-Id"), ids.at(-1))

      assert.deepStrictEqual(yield* tryNats("again", () => publisher.publish(receiptSubject("acme"), "{}", { "Nats-Msg-Id": ids[0]! })), { seq: 1, duplicate: true }, "a duplicate answers the first copy's sequence")
      assert.strictEqual((yield* tryNats("info", () => manager.streams.info(StreamNames.receipts))).state.messages, 500)

      // fenced (the relay's publishes): stored only while the stream is at the expected sequence
      const fenced = (expected: number, id: string) => publisher.publish(receiptSubject("acme"), "{}", { "Nats-Msg-Id": id, "Nats-Expected-Last-Sequence": String(expected) })
      assert.deepStrictEqual(yield* tryNats("fenced", () => fenced(500, "fenced-1")), { seq: 501, duplicate: false })
      const stale = yield* tryNats("stale", () => fenced(500, "fenced-2")).pipe(Effect.flip)
      assert.match(String(stale.cause), /wrong last sequence: 501/)
      assert.strictEqual((yield* tryNats("info", () => manager.streams.info(StreamNames.receipts))).state.messages, 501)

      const nowhere = yield* tryNats("nowhere", () => publisher.publish("no.stream.here", "{}", {})).pipe(Effect.exit)
      assert.isTrue(Exit.isFailure(nowhere))
    }).pipe(Effect.scoped))
})
