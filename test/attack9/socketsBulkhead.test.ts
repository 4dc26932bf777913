/**
 * Attack (issue 9, bulkheads): "a destination that is down, slow or rejecting everything costs the
 * others nothing measurable". A destination may hold up to `maxInFlight` (10,000) requests awaiting
 * answers, each on a connection of its own, and nothing bounds the sockets all destinations open
 * against the process's file descriptors (`HTTP_MAX_CONNECTIONS` bounds only incoming ones). Here the
 * platform runs with 1,024 descriptors (the defaults, 20,000 here, fill the same way at 10,000 a
 * destination): a slow partner's 1,200 pending requests took them all, and another destination's
 * requests failed to connect (EMFILE) and were retried until one freed. Now the deliverers' sockets
 * are bounded together (actors/delivery/SocketBudget.ts: half the descriptors, 512 here), with some
 * kept for every lane and for lanes yet to start.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { eventually } from "../fixtures/http.ts"
import { layerTestNatsServer } from "../fixtures/nats.ts"
import { receivedRequests } from "../fixtures/partnerSimulator.ts"
import { startAttackPlatform, users } from "./platform.ts"

describe("attack: a slow destination's sockets against the others", () => {
  it.live("a slow destination with a large maxInFlight takes no more than its part of the sockets: another destination's requests go at once", () =>
    Effect.gen(function*() {
      const { simulator, api, ingest } = yield* startAttackPlatform("attack9-sockets", {
        simulated: { slow: { slowMs: 60_000 } },
        launcher: ["prlimit", "--nofile=1024:1024"]
      })
      yield* ingest("1001", users("s", 1_200).map((u) => [u, "add"] as const), 1_200)
      yield* ingest("1002", users("o", 5).map((u) => [u, "add"] as const), 5)
      const slow = yield* api("PUT", "/v1/entities/destination/slow", {
        partnerId: "acme", url: `${simulator}/d/slow`, format: "single", ratePerSecond: 100_000, maxInFlight: 2_000, timeoutMs: 120_000, segmentIds: ["1001"]
      })
      assert.strictEqual(slow.status, 201, slow.text)
      // it takes what it may: the budget less the sockets kept for lanes yet to start
      const sentSlow = (a: { readonly body: unknown }) => (a.body as { sent?: number }).sent ?? 0
      yield* eventually(api("GET", "/v1/destinations/slow/status"), (a) => sentSlow(a) >= 400, "60 seconds")
      yield* Effect.sleep("2 seconds")
      assert.isAtMost(sentSlow(yield* api("GET", "/v1/destinations/slow/status")), 512, "the slow destination's requests out at once")
      const ok = yield* api("PUT", "/v1/entities/destination/ok", {
        partnerId: "acme", url: `${simulator}/d/ok`, format: "single", ratePerSecond: 100, segmentIds: ["1002"]
      })
      assert.strictEqual(ok.status, 201, ok.text)
      const received = receivedRequests(simulator, "ok").pipe(Effect.map((rs) => rs.length))
      let got = 0
      for (let waited = 0; waited < 60_000 && got < 5; waited += 250) {
        got = yield* received
        if (got < 5) yield* Effect.sleep("250 millis")
      }
      const status = yield* api("GET", "/v1/destinations/ok/status")
      assert.strictEqual(got, 5, `the healthy destination's partner got ${got} of its 5 records within 60 s: ${status.text}`)
      // a healthy partner: every request of the other destination should have gone through at once
      assert.strictEqual((status.body as { retried: number }).retried, 0, `the healthy destination's requests failed to connect and were retried: ${status.text}`)
    }).pipe(Effect.scoped, Effect.provide(layerTestNatsServer())), { timeout: 150_000 })
})
