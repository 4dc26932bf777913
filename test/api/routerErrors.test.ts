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

    it.effect("a long path is not echoed whole: a 15 KB path answers under 4 KB (it was 30 KB, the path twice)", () =>
      Effect.gen(function*() {
        const { secret: key } = yield* createKey("service")
        const long = "x".repeat(15_000)
        for (const url of [`/v1/entities/advertiser/%zz${long}`, `/v1/nowhere/${long}`, `/v1/entities/advertiser/${long}`]) {
          const res = yield* request({ method: "GET", url, key })
          assert.isAtLeast(res.statusCode, 400, url.slice(0, 40))
          assert.isBelow(res.body.length, 4_096, url.slice(0, 40))
          assert.match(res.json().instance, /… \(\d+ characters\)$/, url.slice(0, 40))
        }
      }))
  })
})
