/**
 * A deleted destination's secret headers go with it (found by attack 11): a destination created later
 * under the same id — for another partner, by someone who never saw those credentials and gives none —
 * has none of them, in its state or in `delivery-secrets.db`, so its deliverer cannot send them to its URL.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import { DestinationSecrets } from "../../domain/delivery/DestinationSecrets.ts"
import { type EntityBody, request } from "../fixtures/http.ts"
import { layerTestPlatform } from "../fixtures/platform.ts"

describe("a deleted destination's secrets", { timeout: 60_000 }, () => {
  layer(layerTestPlatform(), { excludeTestServices: true, timeout: 60_000 })((it) => {
    it.effect("are not those of a destination created again under its id (another partner, no secretHeaders)", () =>
      Effect.gen(function*() {
        for (const partner of ["acme", "other"]) {
          const res = yield* request({ method: "PUT", url: `/v1/entities/partner/${partner}`, body: { name: partner } })
          assert.oneOf(res.statusCode, [200, 201], res.body)
        }
        const first = yield* request({
          method: "PUT", url: "/v1/entities/destination/reused",
          body: { partnerId: "acme", url: "http://127.0.0.1:9/acme", format: "single", ratePerSecond: 5, segmentIds: ["101"], secretHeaders: { "X-Api-Key": "acme-only-secret-0001" } }
        })
        assert.strictEqual(first.statusCode, 201, first.body)
        const deleted = yield* request({ method: "DELETE", url: "/v1/entities/destination/reused" })
        assert.strictEqual(deleted.statusCode, 200, deleted.body)
        assert.deepStrictEqual(yield* DestinationSecrets.use((secrets) => secrets.names("reused")), [])
        // as if a crash had cut the drop after the delete short: dropped before the next creation
        yield* DestinationSecrets.use((secrets) => secrets.put("reused", { "x-api-key": Redacted.make("acme-only-secret-0001") }, "http://127.0.0.1:9"))

        const again = yield* request({
          method: "PUT", url: "/v1/entities/destination/reused",
          body: { partnerId: "other", url: "http://127.0.0.1:9/other", format: "single", ratePerSecond: 5, segmentIds: ["102"] }
        })
        assert.strictEqual(again.statusCode, 201, again.body)
        assert.isUndefined((again.json() as EntityBody).state?.["secretHeaders"], `the new destination holds the deleted one's secrets: ${again.body}`)
        assert.deepStrictEqual(yield* DestinationSecrets.use((secrets) => secrets.names("reused")), [])
      }))
  })
})
