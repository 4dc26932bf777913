/**
 * Attack (issue 9, the rate limit across lanes): `lanes` raised while the destination is idle, then
 * records come. "With `lanes` = N each lane gets its share of the limit", and a lane re-reads its
 * destination every 5 s. The new lanes start within a tick at their shares; the old lane went on at the
 * whole limit until its next read, and the partner got more than the limit in a second (35 against 20).
 * Now the new split waits in the outbox until every lane has had time to take its new share
 * (domain/delivery/laneBarrier.ts `newSplitHoldMs`).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { eventually } from "../fixtures/http.ts"
import { layerTestNatsServer } from "../fixtures/nats.ts"
import { destinationStats } from "../fixtures/partnerSimulator.ts"
import { startAttackPlatform, users } from "./platform.ts"

const LIMIT = 20
const USERS = 160

describe("attack: lanes raised on an idle destination, then records", () => {
  it.live("the new split waits until the old lane re-read its share: never over the limit", () =>
    Effect.gen(function*() {
      const { simulator, api, ingest } = yield* startAttackPlatform("attack9-lanes-rate")
      yield* ingest("981", [["first", "add"]], 1)
      const created = yield* api("PUT", "/v1/entities/destination/lr", {
        partnerId: "acme", url: `${simulator}/d/lr`, format: "single", ratePerSecond: LIMIT, lanes: 1, segmentIds: ["981"]
      })
      assert.strictEqual(created.status, 201, created.text)
      const stats = destinationStats(simulator, "lr")
      yield* eventually(stats, (s) => s.accepted === 1, "60 seconds")
      assert.strictEqual((yield* api("PATCH", "/v1/entities/destination/lr", { lanes: 4 })).status, 200)
      yield* ingest("981", users("l", USERS).map((u) => [u, "add"] as const), USERS + 1)
      const done = yield* eventually(stats, (s) => s.accepted >= USERS + 1, "60 seconds")
      assert.isAtMost(done.maxInAnyWindow, LIMIT, `the most requests in any sliding second, against a limit of ${LIMIT}`)
    }).pipe(Effect.scoped, Effect.provide(layerTestNatsServer())), { timeout: 120_000 })
})
