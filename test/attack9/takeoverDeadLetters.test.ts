/**
 * Attack (issue 9, nothing repeated beyond the requests in flight): a process killed while a chunk's
 * requests are being refused. "A process taking a lane over reads back the receipts of the chunks it is
 * handed and skips those requests: only requests in flight at the crash are sent again." It reads
 * receipts only: requests already refused and dead-lettered have no receipt, so the next owner sends
 * every one of them again.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { eventually } from "../fixtures/http.ts"
import { layerTestNatsServer } from "../fixtures/nats.ts"
import { destinationStats } from "../fixtures/partnerSimulator.ts"
import { startAttackPlatform, users } from "./platform.ts"

const USERS = 12

describe("attack: a takeover of a chunk whose requests were dead-lettered", () => {
  it.live("requests refused and dead-lettered before a SIGKILL are not sent again by the next owner", () =>
    Effect.gen(function*() {
      // every request refused (400, a dead letter at once), each answer 0.4 s late, one at a time
      const { simulator, api, ingest, restart } = yield* startAttackPlatform("attack9-takeover-dlq", {
        simulated: { tk: { rejectAll4xx: true, slowMs: 400 } },
        env: { DELIVERY_CHUNK_RECORDS: String(USERS) }
      })
      yield* ingest("971", users("t", USERS).map((u) => [u, "add"] as const), USERS)
      const created = yield* api("PUT", "/v1/entities/destination/tk", {
        partnerId: "acme", url: `${simulator}/d/tk`, format: "single", ratePerSecond: 10, maxInFlight: 1, maxAttempts: 1, segmentIds: ["971"]
      })
      assert.strictEqual(created.status, 201, created.text)
      const refused = destinationStats(simulator, "tk").pipe(Effect.map((s) => s.failed))
      yield* eventually(refused, (n) => n >= 4, "60 seconds")
      yield* restart
      const before = yield* refused
      yield* eventually(api("GET", "/v1/destinations/tk/status"), (a) => (a.body as { backlog?: number }).backlog === 0, "150 seconds")
      const sent = yield* refused
      // each record once, plus the one request that may have been in flight at the kill
      assert.isAtMost(sent, USERS + 1, `the partner was sent ${sent} requests for ${USERS} records (${before} when the platform was killed)`)
    }).pipe(Effect.scoped, Effect.provide(layerTestNatsServer())), { timeout: 240_000 })
})
