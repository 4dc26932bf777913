/**
 * The rate limit holds while a destination's `lanes` is lowered with a backlog (found by an outside
 * attack): the lanes past the new count still hold chunks and drain them, each with a share of the limit
 * over every lane that may send, not the whole limit each (`ratePerSecond: 4`, `lanes: 4` → 1: before the
 * fix the partner got 16 a second until the old lanes were empty). A platform in its own process and
 * the partner simulator in its own, counting arrivals per sliding second.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { eventually } from "../fixtures/http.ts"
import { layerTestNatsServer, TestNatsServer } from "../fixtures/nats.ts"
import { destinationStats, spawnPartnerSimulator } from "../fixtures/partnerSimulator.ts"
import { acmeSegmentOf, call, platformEnv, startPlatformProcess, waitUntilReady } from "../fixtures/platformProcess.ts"
import { tempDir } from "../fixtures/tempDir.ts"

const ADMIN = "lanes-lowered-admin-key-001"
const USERS = 200
const LIMIT = 4

describe("a destination's lanes lowered with a backlog", () => {
  it.live("the old lanes drain sharing the limit: never more than ratePerSecond in any second", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir("lanes-rate")
      const nats = yield* TestNatsServer
      const simulator = yield* spawnPartnerSimulator({})
      const platform = yield* startPlatformProcess(platformEnv(nats, dataDir, ADMIN, { SHARDS: "4", DELIVERY_TICK: "200 millis" }), dataDir)
      yield* waitUntilReady(platform)
      const api = (method: string, path: string, body?: unknown, key = ADMIN) => call(platform.base, method, path, { key, ...(body === undefined ? {} : { body }) })

      yield* acmeSegmentOf(platform.base, ADMIN, "401", USERS)

      const created = yield* api("PUT", "/v1/entities/destination/lr", {
        partnerId: "acme", url: `${simulator.url}/d/lr`, format: "single", ratePerSecond: LIMIT, lanes: 4, segmentIds: ["401"]
      })
      assert.strictEqual(created.status, 201, created.text)
      const before = yield* eventually(destinationStats(simulator.url, "lr"), (s) => s.accepted >= 12, "60 seconds")
      assert.isAtMost(before.maxInAnyWindow, LIMIT, JSON.stringify(before))

      // the operator consolidates the destination on one lane; the limit is unchanged
      assert.strictEqual((yield* api("PATCH", "/v1/entities/destination/lr", { lanes: 1 })).status, 200)
      yield* Effect.sleep("15 seconds") // lanes re-read their destination every 5 s
      const after = yield* destinationStats(simulator.url, "lr")
      assert.isBelow(after.accepted, USERS, "the backlog must outlast the check")
      assert.isAtMost(after.maxInAnyWindow, LIMIT, `the partner got ${after.maxInAnyWindow} requests in one second against a limit of ${LIMIT}: ${JSON.stringify(after.acceptedPerSecond.slice(-8))}`)
    }).pipe(Effect.scoped, Effect.provide(layerTestNatsServer())), { timeout: 180_000 })
})
