/**
 * Reading a destination's deliverer statuses on a real nats-server while the entries expire (the
 * bucket's TTL: a killed deliverer's status goes so). Listed with `kv.keys()`, a read caught by an
 * expiry waited for an entry that would never come: the status route went unanswered for over 30 s
 * after a deliverer's restart. Every read here must end within a few seconds.
 */
import { assert, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { DelivererStatuses } from "../../../domain/delivery/DelivererStatuses.ts"
import { type DelivererStatus, deliveryStatusBucket } from "../../../domain/delivery/DestinationStatus.ts"
import * as DelivererStatusesKv from "../../../infra/delivery/delivererStatuses.ts"
import { openBucket } from "../../../infra/nats/buckets.ts"
import { tryNats } from "../../../infra/nats/Nats.ts"
import { layerTestNats } from "../../fixtures/nats.ts"

const status = (lane: number): DelivererStatus => ({
  process: `p${lane}`, at: Date.now(), ratePerSecond: 10, allowedRate: 10, currentRate: 0, sent: lane, succeeded: lane, retried: 0, failed: 0,
  drainRate: 0, latencyP50Ms: 1, latencyP99Ms: 1, freshnessP50Ms: null, freshnessP99Ms: null, circuit: "closed"
})

const TTL_MS = 600

layer(Layer.provideMerge(Layer.unwrap(Effect.gen(function*() {
  // the writer decides the bucket's settings: here entries live 0.6 s after their last write
  yield* openBucket(deliveryStatusBucket, { ttl: `${TTL_MS} millis` })
  return DelivererStatusesKv.layerKv
})), layerTestNats()), { excludeTestServices: true, timeout: 60_000 })("deliverer statuses", (it) => {
  it.effect("every read ends while the entries expire under it", () =>
    Effect.gen(function*() {
      const bucket = yield* openBucket(deliveryStatusBucket, { ttl: `${TTL_MS} millis` })
      const statuses = yield* DelivererStatuses
      for (let round = 0; round < 4; round++) {
        for (let lane = 0; lane < 4; lane++) yield* tryNats("put", () => bucket.put(`d.${lane}`, JSON.stringify(status(lane))))
        assert.strictEqual((yield* statuses.read("d")).length, 4)
        // read again and again while the four expire
        const started = Date.now()
        let last = 4
        while (Date.now() - started < TTL_MS * 2.5) {
          const read = yield* statuses.read("d").pipe(Effect.timeout("5 seconds"))
          last = read.length
        }
        assert.strictEqual(last, 0, "all expired")
      }
    }))
})
