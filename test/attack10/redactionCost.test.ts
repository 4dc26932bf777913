/**
 * Attack (issue 9, bulkheads): a partner refusing every request with a body of near-copies of the secret
 * header it received (each one but its last character) made the deliverer spend seconds of the event
 * loop every destination shares on each refusal, cutting the secret out of the dead letter: a regular
 * expression per secret, whose backtracking grew with the secret's length times the body's (8.2 s an
 * answer for a 4,096-character secret). Measured before the fix: the healthy destination beside it went
 * from 99 to 4 requests a second and a status read took 15.9 s.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { eventually } from "../fixtures/http.ts"
import { layerTestNatsServer } from "../fixtures/nats.ts"
import { destinationStats } from "../fixtures/partnerSimulator.ts"
import { hostilePartner } from "../attack9/hostilePartner.ts"
import { startAttackPlatform, users } from "../attack9/platform.ts"

describe("attack: a refusing partner echoing near-copies of the secret header", () => {
  it.live("costs the destination beside it nothing: its 300 records arrive at its rate", () =>
    Effect.gen(function*() {
      const { simulator, api, ingest } = yield* startAttackPlatform("attack10-redaction-cost")
      const partner = yield* hostilePartner("echo-400-near-copies")
      yield* ingest("1101", users("e", 200).map((u) => [u, "add"] as const), 200)
      yield* ingest("1102", users("o", 300).map((u) => [u, "add"] as const), 300)
      // the longest secret a header may hold, one character repeated: the costliest for a backtracking match
      const evil = yield* api("PUT", "/v1/entities/destination/evil", {
        partnerId: "acme", url: `${partner.url}/in`, format: "single", ratePerSecond: 5, maxAttempts: 1, segmentIds: ["1101"],
        secretHeaders: { authorization: `Bearer ${"k".repeat(4_096 - 8)}Z` }
      })
      assert.strictEqual(evil.status, 201, evil.text)
      // refusals flowing (each a dead letter) before the healthy destination starts
      yield* eventually(api("GET", "/v1/destinations/evil/dead-letters"), (a) => ((a.body as { items?: Array<unknown> }).items?.length ?? 0) >= 3, "60 seconds")
      const ok = yield* api("PUT", "/v1/entities/destination/ok", { partnerId: "acme", url: `${simulator}/d/ok`, format: "single", ratePerSecond: 50, segmentIds: ["1102"] })
      assert.strictEqual(ok.status, 201, ok.text)
      // 6 s at its rate; before the fix, about 75 s
      yield* eventually(destinationStats(simulator, "ok"), (s) => s.accepted >= 300, "30 seconds")
      // the refusals went on meanwhile, each kept with the partner's answer (near-copies are not the secret)
      const letters = (yield* api("GET", "/v1/destinations/evil/dead-letters")).body as { items: Array<{ attempts: Array<{ body?: string }> }> }
      assert.isAtLeast(letters.items.length, 10)
      for (const letter of letters.items) assert.strictEqual(letter.attempts[0]?.body, `Bearer ${"k".repeat(2_048 - 7)}`)
    }).pipe(Effect.scoped, Effect.provide(layerTestNatsServer())), { timeout: 180_000 })
})
