/**
 * A malformed %-escape or a path parameter over Fastify's 100 characters was refused by Fastify's
 * router with its own error body (`{"error": "Bad Request", "code": "FST_ERR_BAD_URL"}`, and 414 for
 * a long id), not the problem+json every other client mistake gets.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { createKey, request } from "../fixtures/http.ts"
import { layerTestPlatform } from "../fixtures/platform.ts"

layer(layerTestPlatform(), { excludeTestServices: true, timeout: 60_000 })("the router's own refusals", (it) => {
  describe("are problem+json", () => {
    it.effect("a malformed %-escape and an over-long id answer 400 problem+json invalid-request", () =>
      Effect.gen(function*() {
        const { secret: key } = yield* createKey("service")
        for (const url of ["/v1/entities/advertiser/%zz", "/v1/entities/advertiser/1%", `/v1/entities/advertiser/${"9".repeat(5_000)}`]) {
          const res = yield* request({ method: "GET", url, key })
          assert.strictEqual(res.statusCode, 400, url)
          assert.match(String(res.headers["content-type"]), /^application\/problem\+json/, url)
          assert.strictEqual(res.json().code, "invalid-request", url)
        }
      }))
  })
})
