/**
 * What the DeliveryActor costs per request, apart from the rest of the platform (not part of `npm run
 * bench`; used to compare two versions back to back on a shared machine): a nats-server and the
 * partner simulator in their own processes, BENCH_ACTOR_RECORDS records (default 30,000) put on
 * DELIVER, then one lane (`single`, limit BENCH_ACTOR_RATE, default 15,000/s, 64 in flight) run in
 * this process until the simulator accepted them all. Prints this process's CPU µs per request while
 * delivering, the rate, and the most requests the partner saw in any one-second window.
 *
 *   node bench/deliveryActorCost.ts
 */
import { Effect, Fiber, Layer, Schedule } from "effect"
import { deliverLane } from "../actors/delivery/DeliveryActor.ts"
import { chunkId } from "../domain/delivery/Chunk.ts"
import { deliverSubject } from "../domain/subjects.ts"
import * as DeliveryLedgerJetStream from "../infra/delivery/deliveryLedger.ts"
import * as DeliveryQueueJetStream from "../infra/delivery/deliveryQueue.ts"
import * as PartnerHttpUndici from "../infra/delivery/partnerHttp.ts"
import { layerClusterFor } from "../infra/nats/cluster.ts"
import { Nats, tryNats } from "../infra/nats/Nats.ts"
import { layerTestNats } from "../test/fixtures/nats.ts"
import { destinationStats, spawnPartnerSimulator } from "../test/fixtures/partnerSimulator.ts"
import { chunksFor } from "./deliveryPlatform.ts"
import { round2 } from "./stats.ts"

const records = Number(process.env.BENCH_ACTOR_RECORDS ?? 30_000)
const rate = Number(process.env.BENCH_ACTOR_RATE ?? 15_000)

const run = Effect.gen(function*() {
  const { url } = yield* spawnPartnerSimulator({ fast: { limit: rate } })
  const { jetstream } = yield* Nats
  for (const chunk of chunksFor("fast", records, 500)) {
    yield* tryNats("publish", () => jetstream.publish(deliverSubject("fast", 0), JSON.stringify(chunk), { msgID: chunkId(chunk) }))
  }
  const cpu = process.cpuUsage()
  const started = performance.now()
  const lane = yield* deliverLane({
    destination: "fast",
    lane: 0,
    url: `${url}/d/fast`,
    method: "POST",
    headers: {},
    format: "single",
    batchSize: 1,
    ratePerSecond: rate,
    maxInFlight: 64,
    timeoutMs: 10_000,
    maxAttempts: 8
  }).pipe(Effect.forkChild)
  const stats = yield* destinationStats(url, "fast").pipe(
    Effect.filterOrFail((s) => s.accepted >= records, () => "not yet" as const),
    Effect.retry(Schedule.spaced("100 millis")),
    Effect.orDie
  )
  const seconds = (performance.now() - started) / 1000
  const used = process.cpuUsage(cpu)
  yield* Fiber.interrupt(lane)
  const requests = stats.accepted + stats.throttled + stats.failed
  return {
    records,
    limit: rate,
    seconds: round2(seconds),
    perSecond: round2(stats.accepted / seconds),
    maxInAnyWindow: stats.maxInAnyWindow,
    duplicateKeys: stats.duplicateKeys,
    cpuMicrosPerRequest: round2((used.user + used.system) / requests)
  }
}).pipe(
  Effect.provide(Layer.mergeAll(
    DeliveryQueueJetStream.layerJetStream(),
    DeliveryLedgerJetStream.layerJetStream,
    PartnerHttpUndici.layerUndici,
    layerClusterFor(4)
  ).pipe(Layer.provideMerge(layerTestNats()))),
  Effect.scoped
)

console.log(JSON.stringify(await Effect.runPromise(run)))
process.exit(0)
