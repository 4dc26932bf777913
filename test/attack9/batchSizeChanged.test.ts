/**
 * Attack (issue 9, nothing dropped): `batchSize` raised while a chunk is half delivered. A lane restarts
 * on any change of its destination and gets its unacknowledged chunks again; it skipped the requests
 * whose receipts existed, by Idempotency-Key (`<chunk>.<n>`, the n-th request). Split again at the new
 * size, request n held other records than before, and records never sent were skipped. A key now names
 * the records it carries (`<chunk>.<from>-<to>`): the lane skips the records the receipts name and
 * groups the rest anew.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { eventually } from "../fixtures/http.ts"
import { layerTestNatsServer } from "../fixtures/nats.ts"
import { receivedRequests } from "../fixtures/partnerSimulator.ts"
import { startAttackPlatform, users } from "./platform.ts"

const USERS = 10

describe("attack: batchSize raised while a chunk is half delivered", () => {
  it.live("the records of a half-delivered chunk not yet sent reach the partner after batchSize is raised", () =>
    Effect.gen(function*() {
      // each answer takes 3 s, one at a time: the chunk of 10 is sent in five requests of 2 over ~15 s, longer than the lane takes to see the change (5 s)
      const { simulator, api, ingest } = yield* startAttackPlatform("attack9-batch-size", {
        simulated: { bs: { slowMs: 3_000 } },
        env: { DELIVERY_CHUNK_RECORDS: "10" }
      })
      yield* ingest("951", users("b", USERS).map((u) => [u, "add"] as const), USERS)
      const created = yield* api("PUT", "/v1/entities/destination/bs", {
        partnerId: "acme", url: `${simulator}/d/bs`, format: "json-array", batchSize: 2, ratePerSecond: 10, maxInFlight: 1, segmentIds: ["951"]
      })
      assert.strictEqual(created.status, 201, created.text)
      const received = receivedRequests(simulator, "bs").pipe(Effect.map((rs) => rs.flatMap((r) => r.records as ReadonlyArray<{ userId: string }>).map((r) => r.userId)))
      yield* eventually(received, (ids) => ids.length >= 2, "60 seconds")
      assert.strictEqual((yield* api("PATCH", "/v1/entities/destination/bs", { batchSize: 10 })).status, 200)
      // the lane restarts within 5 s, and the chunk leaves DELIVER once every request of it is settled
      yield* eventually(api("GET", "/v1/destinations/bs/status"), (a) => (a.body as { backlog?: number }).backlog === 0, "60 seconds")
      const got = new Set(yield* received)
      const missing = users("b", USERS).filter((u) => !got.has(u))
      assert.deepStrictEqual(missing, [], "users the partner never received, though their chunk left DELIVER")
    }).pipe(Effect.scoped, Effect.provide(layerTestNatsServer())), { timeout: 120_000 })
})
