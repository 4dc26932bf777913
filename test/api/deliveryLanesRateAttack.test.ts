/**
 * Attack 11 on the delivery rate limit (issue 9): "never more than the limit in any sliding one-second
 * window, all processes together". Lowering a destination's `lanes` while its lanes have a backlog breaks
 * it for as long as the backlog lasts: the lanes past the new count keep draining their chunks, each now
 * with the whole limit as its share. Seen by hand and here: `ratePerSecond: 4`, `lanes: 4` → 4 a second
 * (1 per lane); after `PATCH {"lanes": 1}` the partner got 16 a second, steadily, until the old lanes'
 * chunks were gone (with a real backlog: hours at N times the partner's limit, 429s, a partner that
 * bans the client). README documents only that order between the lanes is not kept during the change.
 * A platform in its own process and the partner simulator in its own, counting arrivals per sliding second.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { eventually } from "../fixtures/http.ts"
import { layerTestNatsServer, TestNatsServer } from "../fixtures/nats.ts"
import { destinationStats, spawnPartnerSimulator } from "../fixtures/partnerSimulator.ts"
import { call, platformEnv, startPlatformProcess, waitUntilReady } from "../fixtures/platformProcess.ts"
import { tempDir } from "../fixtures/tempDir.ts"

const ADMIN = "attack11-lanes-admin-key-001"
const USERS = 200
const LIMIT = 4

describe("delivery rate attacked (attack 11)", () => {
  it.live("HOLE: lowering lanes (4 → 1) with a backlog sends N times ratePerSecond: every old lane drains with the whole limit", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir("lanes-rate")
      const nats = yield* TestNatsServer
      const simulator = yield* spawnPartnerSimulator({})
      const platform = yield* startPlatformProcess(platformEnv(nats, dataDir, ADMIN, { SHARDS: "4", DELIVERY_TICK: "200 millis" }), dataDir)
      yield* waitUntilReady(platform)
      const api = (method: string, path: string, body?: unknown, key = ADMIN) => call(platform.base, method, path, { key, ...(body === undefined ? {} : { body }) })

      assert.strictEqual((yield* api("PUT", "/v1/entities/partner/acme", { name: "Acme" })).status, 201)
      const partnerKey = ((yield* api("POST", "/v1/admin/keys", { name: "acme", role: "partner:acme" })).body as { secret: string }).secret
      const time = new Date().toISOString()
      const lines = Array.from({ length: USERS }, (_, i) => `{"idKind":"cookie","userId":"u${i}","segmentId":"401","op":"add","time":"${time}"}`).join("\n") + "\n"
      const posted = yield* Effect.promise(() =>
        fetch(`${platform.base}/v1/ingest/acme/records`, { method: "POST", headers: { authorization: `Bearer ${partnerKey}`, "content-type": "application/x-ndjson" }, body: lines })
          .then((r) => r.status))
      assert.strictEqual(posted, 202)
      yield* eventually(api("GET", "/v1/segments/401"), (a) => (a.body as { members?: number }).members === USERS, "60 seconds")

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
