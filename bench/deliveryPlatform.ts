/**
 * The platform as the delivery benchmark drives it: a nats-server and `api/main.ts` in their own
 * processes (what `npm start` runs), a partner and its destinations created through the HTTP API
 * (pointing at the partner simulator), and package chunks published straight onto DELIVER — the
 * DeliveryActor's input — so that what is measured is delivery alone, not the packages upstream.
 */
import { jetstream } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { Effect, Schedule } from "effect"
import { destinationStats } from "../test/fixtures/partnerSimulator.ts"
import { type Chunk, chunkId } from "../domain/delivery/Chunk.ts"
import { deliverSubject } from "../domain/subjects.ts"
import { startTestNatsServer } from "../test/fixtures/nats.ts"
import { call, platformEnv, startPlatformProcess, waitUntilReady } from "../test/fixtures/platformProcess.ts"
import { tempDir } from "../test/fixtures/tempDir.ts"
import type { BenchDestination, Sender } from "./deliveryLoad.ts"
import { BENCH_ADMIN_KEY } from "./platform.ts"

export const benchPartner = "bench-partner"

/** A platform process on its own nats-server; `publish` puts chunks on DELIVER. */
export const startDeliveryPlatform = (env: Record<string, string> = {}) =>
  Effect.gen(function*() {
    const nats = yield* startTestNatsServer
    const dir = yield* tempDir("bench-delivery")
    const platform = yield* startPlatformProcess(platformEnv(nats, dir, BENCH_ADMIN_KEY, { LOG_LEVEL: "Warn", ...env }), dir)
    yield* waitUntilReady(platform)
    const nc = yield* Effect.acquireRelease(
      Effect.promise(() => connect({ servers: nats.url, name: "bench-delivery", user: nats.platform.user, pass: nats.platform.password })),
      (nc) => Effect.promise(() => nc.close())
    )
    const js = jetstream(nc)
    /** Publishes `chunk` on its lane (deduplicated by its chunk id). */
    const publish = (chunk: Chunk) =>
      Effect.promise(() => js.publish(deliverSubject(chunk.destination, chunk.lane), JSON.stringify(chunk), { msgID: chunkId(chunk) }))
    return { platform, nats, publish }
  })

export const admin = (base: string, method: string, path: string, body: unknown) =>
  call(base, method, path, { key: BENCH_ADMIN_KEY, body }).pipe(
    Effect.filterOrFail((answer) => answer.status < 300, (answer) => new Error(`${method} ${path}: ${answer.status} ${answer.text}`)),
    // the entity routes answer 503 while the platform still starts its shards
    Effect.retry(Schedule.spaced("500 millis").pipe(Schedule.upTo({ times: 120 }))),
    Effect.orDie
  )

/** The bench partner and one destination per `destinations` entry, each sending to `${simulator}/d/<id>`, one record per request. */
export const createDestinations = (base: string, simulator: string, destinations: ReadonlyArray<BenchDestination>) =>
  Effect.forEach(destinations, (d) =>
    admin(base, "PUT", `/v1/entities/destination/${d.id}`, {
      partnerId: benchPartner,
      url: `${simulator}/d/${d.id}`,
      format: "single",
      ratePerSecond: d.ratePerSecond,
      maxInFlight: d.maxInFlight,
      timeoutMs: 10_000,
      segmentIds: ["1"]
    }), { concurrency: 4, discard: true })

/** `count` records for `destination` in chunks of `chunkSize` (continuous package, lane 0), each user distinct. */
export const chunksFor = (destination: string, count: number, chunkSize: number): Array<Chunk> =>
  Array.from({ length: Math.ceil(count / chunkSize) }, (_, seq) => ({
    destination,
    lane: 0,
    packageId: "bench",
    kind: "refresh" as const,
    seq,
    records: Array.from({ length: Math.min(chunkSize, count - seq * chunkSize) }, (_, i) => ({
      idKind: "cookie" as const,
      userId: `${destination}-u${seq * chunkSize + i}`,
      segmentId: "1",
      op: "add" as const,
      time: "2026-11-28T12:00:00.000Z"
    }))
  }))

const chunkSize = 500
/** records published per destination: its limit for the phase and some seconds more, so that it never runs dry */
const recordsFor = (d: BenchDestination, durationMs: number) => Math.min(400_000, Math.ceil(d.ratePerSecond * (durationMs / 1000 + 10)))

/**
 * The platform's DeliveryActors as the benchmark's sender: each phase creates its destinations, puts
 * their records on DELIVER, waits until the simulator has accepted a first request of each, lets them
 * deliver for `durationMs`, and deletes them (their deliverers stop; the rest of their backlog is left).
 */
export const platformSender = (simulator: string) =>
  Effect.gen(function*() {
    const { platform, publish } = yield* startDeliveryPlatform()
    yield* admin(platform.base, "PUT", `/v1/entities/partner/${benchPartner}`, { name: "Delivery bench partner" })
    const sender: Sender = {
      kind: "the platform's DeliveryActors (api/main.ts in its own process, chunks on DELIVER)",
      pid: platform.pid,
      send: (destinations, durationMs) =>
        Effect.gen(function*() {
          yield* Effect.forEach(destinations, (d) =>
            Effect.forEach(chunksFor(d.id, recordsFor(d, durationMs), chunkSize), publish, { concurrency: 16, discard: true }), { discard: true })
          yield* createDestinations(platform.base, simulator, destinations)
          yield* Effect.forEach(destinations, (d) =>
            destinationStats(simulator, d.id).pipe(
              Effect.filterOrFail((stats) => stats.accepted + stats.throttled + stats.failed > 0, () => "none yet" as const),
              Effect.retry(Schedule.spaced("200 millis").pipe(Schedule.upTo({ times: 300 }))),
              Effect.catch(() => Effect.die(new Error(`no request for ${d.id} reached the simulator within 60 s: are the platform's deliverers running?`)))
            ), { concurrency: 4, discard: true })
          yield* Effect.sleep(durationMs)
          yield* Effect.forEach(destinations, (d) => admin(platform.base, "DELETE", `/v1/entities/destination/${d.id}`, undefined), { concurrency: 4, discard: true })
        })
    }
    return sender
  })
