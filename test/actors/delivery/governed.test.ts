/**
 * DeliveryActors of three destinations at once against the partner simulator in its own process (it
 * enforces limits over sliding one-second windows, as partners do), on a real nats-server: the rate
 * is never above the limit in any window; a partner limiting below the configured rate answers 429 +
 * Retry-After and the governor lowers its rate, nothing lost or accepted twice; a partner that is down
 * opens its circuit and keeps its backlog on DELIVER while the others deliver everything, then gets
 * everything once it is back. A destination rejecting everything is logged as a count of dead letters
 * at most every 10 s, not a line per request.
 */
import { assert, layer } from "@effect/vitest"
import { Effect, Fiber, Layer, Logger, Option } from "effect"
import { deliverLane, type LaneSettings } from "../../../actors/delivery/DeliveryActor.ts"
import { type Chunk, chunkId } from "../../../domain/delivery/Chunk.ts"
import { type DelivererStatus, deliveryStatusBucket } from "../../../domain/delivery/DestinationStatus.ts"
import { deliverSubject, StreamNames } from "../../../domain/subjects.ts"
import * as DeliveryLedgerJetStream from "../../../infra/delivery/deliveryLedger.ts"
import * as DeliveryQueueJetStream from "../../../infra/delivery/deliveryQueue.ts"
import * as PartnerHttpUndici from "../../../infra/delivery/partnerHttp.ts"
import { openBucket } from "../../../infra/nats/buckets.ts"
import { layerClusterFor } from "../../../infra/nats/cluster.ts"
import { Nats, tryNats } from "../../../infra/nats/Nats.ts"
import { eventually } from "../../fixtures/http.ts"
import { layerTestNats } from "../../fixtures/nats.ts"
import { configureDestination, destinationStats, spawnPartnerSimulator } from "../../fixtures/partnerSimulator.ts"

const chunksOf = (destination: string, chunks: number, perChunk: number): ReadonlyArray<Chunk> =>
  Array.from({ length: chunks }, (_, seq) => ({
    destination,
    lane: 0,
    packageId: "continuous",
    kind: "continuous" as const,
    seq,
    records: Array.from({ length: perChunk }, (_, i) => ({
      idKind: "cookie" as const,
      userId: `${destination}-u${seq * perChunk + i}`,
      segmentId: "100",
      op: "add" as const,
      time: new Date().toISOString()
    }))
  }))

const publish = (chunks: ReadonlyArray<Chunk>) =>
  Effect.gen(function*() {
    const { jetstream } = yield* Nats
    for (const chunk of chunks) {
      yield* tryNats("publish", () => jetstream.publish(deliverSubject(chunk.destination, chunk.lane), JSON.stringify(chunk), { msgID: chunkId(chunk) }))
    }
  })

const pendingChunks = (destination: string) =>
  Effect.gen(function*() {
    const { manager } = yield* Nats
    const info = yield* tryNats("info", () => manager.streams.info(StreamNames.deliver, { subjects_filter: deliverSubject(destination, 0) }))
    return info.state.subjects?.[deliverSubject(destination, 0)] ?? 0
  })

const statusOf = (destination: string) =>
  Effect.gen(function*() {
    const bucket = yield* openBucket(deliveryStatusBucket)
    const entry = yield* tryNats("status", () => bucket.get(`${destination}.0`))
    return entry === null || entry.length === 0 ? Option.none<DelivererStatus>() : Option.some(entry.json<DelivererStatus>())
  })

const settingsFor = (destination: string, url: string, ratePerSecond: number): LaneSettings => ({
  destination,
  lane: 0,
  url: `${url}/d/${destination}`,
  method: "POST",
  headers: {},
  format: "single",
  batchSize: 1,
  ratePerSecond,
  maxInFlight: 8,
  timeoutMs: 5_000,
  maxAttempts: 8
})

const deliveryLayer = Layer.mergeAll(
  DeliveryQueueJetStream.layerJetStream(),
  DeliveryLedgerJetStream.layerJetStream,
  PartnerHttpUndici.layerUndici,
  layerClusterFor(4)
).pipe(Layer.provideMerge(layerTestNats()))

layer(deliveryLayer, { excludeTestServices: true, timeout: 90_000 })("delivery under a partner's limits", (it) => {
  it.effect("keeps every window within the limit, backs off on 429, and isolates a destination that is down", () =>
    Effect.gen(function*() {
      const simulator = yield* spawnPartnerSimulator({ steady: { limit: 30 }, throttling: { limit: 15 }, down: { down: true } })
      yield* publish(chunksOf("steady", 3, 30))
      yield* publish(chunksOf("throttling", 3, 15))
      yield* publish(chunksOf("down", 2, 10))
      const options = { statusEvery: "200 millis", backoff: { baseDelayMs: 50, maxDelayMs: 500 }} as const
      const lanes = yield* Effect.forkChild(Effect.all([
        deliverLane(settingsFor("steady", simulator.url, 30), options),
        // configured at twice what the partner takes: it answers 429 + Retry-After
        deliverLane(settingsFor("throttling", simulator.url, 30), options),
        deliverLane(settingsFor("down", simulator.url, 30), options)
      ], { concurrency: "unbounded" }))

      // the down destination's circuit opens; its chunks stay on DELIVER
      yield* eventually(statusOf("down"), (s) => Option.isSome(s) && s.value.circuit !== "closed", "30 seconds")
      assert.strictEqual(yield* pendingChunks("down"), 2)

      // meanwhile the others deliver everything, the steady one never above its limit in any window
      const steady = yield* eventually(destinationStats(simulator.url, "steady"), (s) => s.accepted === 90, "40 seconds")
      assert.isAtMost(steady.maxInAnyWindow, 30, JSON.stringify(steady))
      assert.strictEqual(steady.throttled, 0)
      assert.strictEqual(steady.duplicateKeys, 0)
      const throttling = yield* eventually(destinationStats(simulator.url, "throttling"), (s) => s.accepted === 45, "40 seconds")
      assert.isAbove(throttling.throttled, 0)
      assert.strictEqual(throttling.duplicateKeys, 0)
      const throttledStatus = yield* statusOf("throttling")
      assert.ok(Option.isSome(throttledStatus) && throttledStatus.value.allowedRate < 30, JSON.stringify(throttledStatus))
      assert.strictEqual((yield* destinationStats(simulator.url, "down")).accepted, 0)
      assert.isAbove(yield* pendingChunks("down"), 0)

      // back up: the circuit's probe succeeds and the backlog drains, nothing dead-lettered
      yield* configureDestination(simulator.url, "down", { down: false })
      const down = yield* eventually(destinationStats(simulator.url, "down"), (s) => s.accepted === 20, "40 seconds")
      assert.strictEqual(down.duplicateKeys, 0)
      yield* eventually(pendingChunks("down"), (n) => n === 0, "20 seconds")
      const status = yield* eventually(statusOf("down"), (s) => Option.isSome(s) && s.value.circuit === "closed" && s.value.failed === 0, "20 seconds")
      assert.ok(Option.isSome(status) && status.value.retried > 0)
      yield* Fiber.interrupt(lanes)
    }))

  it.effect("logs a destination's dead letters as counts, at most one line every 10 s", () =>
    Effect.gen(function*() {
      const lines: Array<{ readonly count: number }> = []
      const capture = Logger.layer([Logger.make(({ message }) => {
        const [text, fields] = Array.isArray(message) ? message : [message]
        if (text === "delivery: dead letters") lines.push(fields as { count: number })
      })], { mergeWithExisting: true })
      const simulator = yield* spawnPartnerSimulator({ refusing: { limit: 1_000, rejectAll4xx: true } })
      yield* publish(chunksOf("refusing", 4, 10))
      const lane = yield* Effect.forkChild(deliverLane(settingsFor("refusing", simulator.url, 1_000), { statusEvery: "200 millis" }).pipe(Effect.provide(capture)))
      // every request dead-lettered at its first 400; the log gets the first at once, the other 39 as one count
      yield* eventually(Effect.sync(() => lines.reduce((sum, line) => sum + line.count, 0)), (n) => n === 40, "40 seconds")
      assert.strictEqual(lines[0]!.count, 1)
      assert.isAtMost(lines.length, 3, JSON.stringify(lines))
      assert.strictEqual((yield* destinationStats(simulator.url, "refusing")).accepted, 0)
      yield* Fiber.interrupt(lane)
    }))
})
