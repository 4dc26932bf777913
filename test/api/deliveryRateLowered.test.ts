/**
 * A destination's `ratePerSecond` lowered while it delivers applies within about the relay's lag, not at
 * the lanes' next periodic re-read (up to 5 s): each process follows SNAPSHOTS for destination changes
 * (actors/delivery/destinationChanges.ts). Before (stop 28's outside attack), 40/s lowered to 2/s went on
 * at 40/s for up to 5 s: 160 requests over the new limit. A platform in its own process and the partner
 * simulator in its own, keeping every request's arrival time.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { eventually } from "../fixtures/http.ts"
import { layerTestNatsServer, TestNatsServer } from "../fixtures/nats.ts"
import { destinationStats, receivedRequests, spawnPartnerSimulator } from "../fixtures/partnerSimulator.ts"
import { acmeSegmentOf, call, platformEnv, startPlatformProcess, waitUntilReady } from "../fixtures/platformProcess.ts"
import { tempDir } from "../fixtures/tempDir.ts"

const ADMIN = "rate-lowered-admin-key-0001"
const USERS = 600

/** The most of `times` (ms) in any one-second window. */
const mostInASecond = (times: ReadonlyArray<number>) => {
  const sorted = [...times].sort((a, b) => a - b)
  let most = 0
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (sorted[i]! - sorted[j]! >= 1_000) j++
    most = Math.max(most, i - j + 1)
  }
  return most
}

describe("a destination's rate lowered while it delivers", () => {
  it.live("applies within about a second, not at the lanes' next re-read", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir("rate-lowered")
      const nats = yield* TestNatsServer
      const simulator = yield* spawnPartnerSimulator({})
      const platform = yield* startPlatformProcess(platformEnv(nats, dataDir, ADMIN, { SHARDS: "4", DELIVERY_TICK: "200 millis" }), dataDir)
      yield* waitUntilReady(platform)
      const api = (method: string, path: string, body?: unknown) => call(platform.base, method, path, { key: ADMIN, ...(body === undefined ? {} : { body }) })

      yield* acmeSegmentOf(platform.base, ADMIN, "402", USERS)

      const created = yield* api("PUT", "/v1/entities/destination/rl", {
        partnerId: "acme", url: `${simulator.url}/d/rl`, format: "single", ratePerSecond: 40, segmentIds: ["402"]
      })
      assert.strictEqual(created.status, 201, created.text)
      yield* eventually(destinationStats(simulator.url, "rl"), (s) => s.accepted >= 60, "60 seconds")

      const lowered = yield* api("PATCH", "/v1/entities/destination/rl", { ratePerSecond: 2 })
      assert.strictEqual(lowered.status, 200, lowered.text)
      const at = Date.now()
      // requests arriving from a second and a half after the change on: at the new limit
      const later = yield* eventually(
        Effect.map(receivedRequests(simulator.url, "rl"), (received) => received.filter((r) => r.at >= at + 1_500).map((r) => r.at)),
        (times) => times.length >= 6,
        "60 seconds"
      )
      const stats = yield* destinationStats(simulator.url, "rl")
      assert.isBelow(stats.accepted, USERS, "the backlog must outlast the check")
      assert.isAtMost(mostInASecond(later), 2, `after the change: ${JSON.stringify(later.map((t) => t - at))}`)
    }).pipe(Effect.scoped, Effect.provide(layerTestNatsServer())), { timeout: 180_000 })
})
