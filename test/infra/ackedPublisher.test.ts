/**
 * The AckedPublisher on a real nats-server: hundreds of publishes at once each resolve once RECEIPTS
 * stored them (every one there, once, with its Nats-Msg-Id); a repeated id resolves as a duplicate
 * without a second copy; a subject no stream takes rejects (no responders) instead of hanging.
 */
import { assert, layer } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { receiptSubject, StreamNames } from "../../domain/subjects.ts"
import { makeAckedPublisher } from "../../infra/nats/ackedPublisher.ts"
import { Nats, tryNats } from "../../infra/nats/Nats.ts"
import { layerTestNats } from "../fixtures/nats.ts"

layer(layerTestNats(), { excludeTestServices: true, timeout: 60_000 })("the acked publisher", (it) => {
  it.effect("resolves each publish once stored, drops a repeated id, rejects what no stream takes", () =>
    Effect.gen(function*() {
      const { connection, manager } = yield* Nats
      const publisher = yield* makeAckedPublisher(connection, 5_000)
      const ids = Array.from({ length: 500 }, (_, i) => `acme.0.continuous.0.${i}`)
      const seqs = yield* tryNats("publish", () => Promise.all(ids.map((id) => publisher.publish(receiptSubject("acme"), JSON.stringify({ id }), { "Nats-Msg-Id": id }))))
      // each resolves with its stream sequence (the device outbox fences on them)
      assert.deepStrictEqual([...seqs].sort((a, b) => a - b), ids.map((_, i) => i + 1))
      const stored = yield* tryNats("info", () => manager.streams.info(StreamNames.receipts))
      assert.strictEqual(stored.state.messages, 500)
      const last = yield* tryNats("last", () => manager.streams.getMessage(StreamNames.receipts, { last_by_subj: receiptSubject("acme") }))
      assert.strictEqual(last?.header.get("Nats-Msg-Id"), ids.at(-1))

      assert.strictEqual(yield* tryNats("again", () => publisher.publish(receiptSubject("acme"), "{}", { "Nats-Msg-Id": ids[0]! })), 1, "a duplicate answers the first copy's sequence")
      assert.strictEqual((yield* tryNats("info", () => manager.streams.info(StreamNames.receipts))).state.messages, 500)

      const nowhere = yield* tryNats("nowhere", () => publisher.publish("no.stream.here", "{}", {})).pipe(Effect.exit)
      assert.isTrue(Exit.isFailure(nowhere))
    }).pipe(Effect.scoped))
})
