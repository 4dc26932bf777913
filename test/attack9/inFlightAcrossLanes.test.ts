/**
 * Attack (issue 9, the in-flight limit): `maxInFlight` is the destination's "maximum requests in
 * flight". Split over `lanes`, each lane gets ceil(maxInFlight / lanes), at least 1: a destination with
 * `maxInFlight` 1 (a partner taking one request at a time) and 4 lanes had 4 requests awaiting answers.
 * Now more lanes than `maxInFlight` are refused, and the lanes' shares are integers summing to it.
 * Measured at the partner: with each answer 1.5 s late and three requests at a time, no sliding second
 * can hold four arrivals (ceil over 2 lanes put 4 in flight).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { eventually } from "../fixtures/http.ts"
import { layerTestNatsServer } from "../fixtures/nats.ts"
import { destinationStats } from "../fixtures/partnerSimulator.ts"
import { startAttackPlatform, users } from "./platform.ts"

const USERS = 16

describe("attack: maxInFlight split over lanes", () => {
  it.live("more lanes than maxInFlight are refused naming lanes; maxInFlight 3 over 2 lanes has at most 3 requests in flight", () =>
    Effect.gen(function*() {
      const { simulator, api, ingest } = yield* startAttackPlatform("attack9-inflight-lanes", { simulated: { mf: { slowMs: 1_500 } } })
      yield* ingest("991", users("m", USERS).map((u) => [u, "add"] as const), USERS)
      const destination = { partnerId: "acme", url: `${simulator}/d/mf`, format: "single", ratePerSecond: 100, segmentIds: ["991"] }
      const refused = yield* api("PUT", "/v1/entities/destination/mf", { ...destination, maxInFlight: 1, lanes: 4 })
      assert.strictEqual(refused.status, 400, refused.text)
      assert.include(refused.text, `"pointer":"/lanes"`)
      const created = yield* api("PUT", "/v1/entities/destination/mf", { ...destination, maxInFlight: 3, lanes: 2 })
      assert.strictEqual(created.status, 201, created.text)
      const stats = yield* eventually(destinationStats(simulator, "mf"), (s) => s.accepted >= 8, "60 seconds")
      assert.isAtMost(stats.maxInAnyWindow, 3, "requests arriving within one second, three in flight at a time, each answered 1.5 s later")
    }).pipe(Effect.scoped, Effect.provide(layerTestNatsServer())), { timeout: 120_000 })
})
