/**
 * DLQ bounded (issue 9: nothing dropped, and one destination cannot fill the bus for all): a destination
 * whose dead letters reach their bound (`deliveryDeadLettersPerDestination`, 3 here) stops sending; its
 * records wait on DELIVER and in the senders holding a refused letter, which are stored, without a
 * request sent again, once its letters are discarded. Another destination's lane goes on meanwhile.
 * The partner is the simulator in its own process, rejecting every record of `acme` with a 400.
 */
import { assert, layer } from "@effect/vitest"
import { Effect, Fiber, Layer } from "effect"
import { deliverLane, type LaneSettings } from "../../../actors/delivery/DeliveryActor.ts"
import { type Chunk, chunkId } from "../../../domain/delivery/Chunk.ts"
import { type DelivererStatus, deliveryStatusBucket } from "../../../domain/delivery/DestinationStatus.ts"
import { deliverSubject, deliveryDeadLetterSubject, StreamNames } from "../../../domain/subjects.ts"
import * as DeliveryLedgerJetStream from "../../../infra/delivery/deliveryLedger.ts"
import * as DeliveryQueueJetStream from "../../../infra/delivery/deliveryQueue.ts"
import * as PartnerHttpUndici from "../../../infra/delivery/partnerHttp.ts"
import { openBucket } from "../../../infra/nats/buckets.ts"
import { layerClusterFor } from "../../../infra/nats/cluster.ts"
import { Nats, tryNats } from "../../../infra/nats/Nats.ts"
import { eventually } from "../../fixtures/http.ts"
import { streamMessages } from "../../fixtures/jetstreamContents.ts"
import { layerTestNats } from "../../fixtures/nats.ts"
import { destinationStats, spawnPartnerSimulator } from "../../fixtures/partnerSimulator.ts"

const chunkOf = (destination: string, users: ReadonlyArray<string>): Chunk => ({
  destination,
  lane: 0,
  packageId: "continuous",
  kind: "continuous",
  seq: 0,
  records: users.map((userId, i) => ({ idKind: "cookie", userId, segmentId: "100", op: "add", time: new Date(Date.UTC(2026, 10, 1, 10, 0, i)).toISOString() }))
})

const settingsOf = (destination: string, url: string): LaneSettings => ({
  destination,
  lane: 0,
  url: `${url}/d/${destination}`,
  method: "POST",
  headers: {},
  format: "json-array",
  batchSize: 1,
  ratePerSecond: 100,
  maxInFlight: 2,
  timeoutMs: 5_000,
  maxAttempts: 3
})

const deliveryLayer = Layer.mergeAll(
  DeliveryQueueJetStream.layerJetStream(),
  DeliveryLedgerJetStream.layerJetStream,
  PartnerHttpUndici.layerUndici,
  layerClusterFor(4)
).pipe(Layer.provideMerge(layerTestNats({ deliveryDeadLettersPerDestination: 3 })))

const users = ["u1", "u2", "u3", "u4", "u5", "u6"]

layer(deliveryLayer, { excludeTestServices: true, timeout: 90_000 })("DLQ at its bound", (it) => {
  it.effect("a destination whose dead letters reach their bound waits, sending nothing more, while another goes on; discarded, the rest are stored without a request sent twice", () =>
    Effect.gen(function*() {
      const { jetstream, manager } = yield* Nats
      const simulator = yield* spawnPartnerSimulator({ acme: { rejectAll4xx: true }, other: {} })
      for (const destination of ["acme", "other"]) {
        const chunk = chunkOf(destination, users)
        yield* tryNats("publish chunk", () => jetstream.publish(deliverSubject(destination, 0), JSON.stringify(chunk), { msgID: chunkId(chunk) }))
      }
      const options = { backoff: { baseDelayMs: 20, maxDelayMs: 100 }, statusEvery: "200 millis", deadLettersFullRetry: "200 millis" } as const
      const lanes = yield* Effect.all([deliverLane(settingsOf("acme", simulator.url), options), deliverLane(settingsOf("other", simulator.url), options)], { concurrency: 2 }).pipe(Effect.forkChild)

      const letters = Effect.map(streamMessages(StreamNames.deliveryDeadLetters), (ms) => ms.map((m) => (m.body as { id: string }).id))
      const stored = yield* eventually(letters, (ids) => ids.length === 3, "30 seconds")
      // the other destination is not held up
      yield* eventually(destinationStats(simulator.url, "other"), (s) => s.accepted === users.length, "30 seconds")
      // acme sends nothing more: 3 letters stored, the 2 senders each holding one refused (no request after)
      yield* Effect.sleep("1500 millis")
      const held = yield* destinationStats(simulator.url, "acme")
      assert.strictEqual(held.failed, 5, "3 stored + 2 held by the waiting senders, and nothing sent since")
      assert.deepStrictEqual((yield* letters).length, 3)
      const onDeliver = yield* streamMessages(StreamNames.deliver)
      assert.deepStrictEqual(onDeliver.map((m) => m.subject), [deliverSubject("acme", 0)], "acme's chunk waits, not acked")
      // and its status says why (the other's does not)
      const statuses = yield* openBucket(deliveryStatusBucket)
      const refused = (key: string) => Effect.promise(() => statuses.get(key)).pipe(Effect.map((entry) => entry?.json<DelivererStatus>().deadLettersRefused))
      assert.isTrue(yield* eventually(refused("acme.0"), (r) => r === true, "10 seconds"))
      assert.isFalse(yield* refused("other.0"))

      // its letters discarded: the held ones are stored, then the last request goes and is dead-lettered too
      yield* tryNats("discard", () => manager.streams.purge(StreamNames.deliveryDeadLetters, { filter: deliveryDeadLetterSubject("acme") }))
      const rest = yield* eventually(letters, (ids) => ids.length === 3, "30 seconds")
      yield* eventually(streamMessages(StreamNames.deliver), (ms) => ms.length === 0, "30 seconds")
      assert.sameMembers([...stored, ...rest], users.map((_, i) => `acme.0.continuous.0.${i}`), "every record dead-lettered once: none lost, none twice")
      assert.strictEqual((yield* destinationStats(simulator.url, "acme")).failed, users.length, "each request sent once")
      yield* eventually(refused("acme.0"), (r) => r === false, "10 seconds")
      yield* Fiber.interrupt(lanes)
    }))
})
