import { assert, describe, it, layer } from "@effect/vitest"
import { ConfigProvider, Effect } from "effect"
import { TestClock } from "effect/testing"
import { PlatformConfig } from "../../api/config.ts"
import * as RateLimiter from "../../api/rateLimit.ts"
import { route } from "../../api/route.ts"
import { layerTestApp, TestApp } from "../fixtures/app.ts"
import { assertProblem, createKey, eventually, request } from "../fixtures/http.ts"
import { layerTestPlatform } from "../fixtures/platform.ts"

describe("token buckets", () => {
  const policy = { default: { perSecond: 2, burst: 4 }, byRole: { auditor: { perSecond: 100, burst: 100 }, "partner:big": { perSecond: 10, burst: 10 } } }
  const outcome = (effect: Effect.Effect<void, { retryAfterSeconds: number }>) =>
    effect.pipe(Effect.match({ onSuccess: () => "ok", onFailure: (e) => `retry after ${e.retryAfterSeconds} s` }))

  it.effect("let a burst through, then refill at the rate; a refusal says when to come back and takes nothing", () =>
    Effect.gen(function*() {
      const limiter = RateLimiter.make(policy)
      const key = { id: "k1", role: "service" }
      for (let i = 0; i < 4; i++) assert.strictEqual(yield* outcome(limiter.take(key, 1)), "ok")
      assert.strictEqual(yield* outcome(limiter.take(key, 1)), "retry after 1 s")
      assert.strictEqual(yield* outcome(limiter.take(key, 3)), "retry after 2 s")
      yield* TestClock.adjust("499 millis")
      assert.strictEqual(yield* outcome(limiter.take(key, 1)), "retry after 1 s")
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(yield* outcome(limiter.take(key, 1)), "ok")
      // Another key has its own bucket.
      assert.strictEqual(yield* outcome(limiter.take({ id: "k2", role: "service" }, 4)), "ok")
    }))

  it.effect("a role's own limit (exact role, else its kind) overrides the default; a cost above the burst takes the whole bucket; admin is not limited unless named", () =>
    Effect.gen(function*() {
      const limiter = RateLimiter.make(policy)
      for (let i = 0; i < 100; i++) assert.strictEqual(yield* outcome(limiter.take({ id: "a", role: "auditor" }, 1)), "ok")
      for (let i = 0; i < 10; i++) assert.strictEqual(yield* outcome(limiter.take({ id: "p", role: "partner:big" }, 1)), "ok")
      assert.strictEqual(yield* outcome(limiter.take({ id: "p", role: "partner:big" }, 1)), "retry after 1 s")
      assert.strictEqual(yield* outcome(limiter.take({ id: "s", role: "service" }, 50)), "ok")
      assert.strictEqual(yield* outcome(limiter.take({ id: "s", role: "service" }, 1)), "retry after 1 s")
      // Admin keys are limited only when named.
      for (let i = 0; i < 1_000; i++) assert.strictEqual(yield* outcome(limiter.take({ id: "admin", role: "admin" }, 1)), "ok")
      const named = RateLimiter.make({ ...policy, byRole: { admin: { perSecond: 1, burst: 1 } } })
      assert.strictEqual(yield* outcome(named.take({ id: "admin", role: "admin" }, 1)), "ok")
      assert.strictEqual(yield* outcome(named.take({ id: "admin", role: "admin" }, 1)), "retry after 1 s")
    }))

  it.effect("drop buckets that have refilled, so memory follows the keys active lately", () =>
    Effect.gen(function*() {
      const limiter = RateLimiter.make(policy, { sweepEveryMillis: 1_000 })
      yield* TestClock.adjust("1 second")
      for (let i = 0; i < 1_000; i++) yield* limiter.take({ id: `key-${i}`, role: "service" }, 1)
      assert.strictEqual(limiter.size(), 1_000)
      // Refilled (1 token at 2/s) and past the sweep interval: the next request sweeps them away.
      yield* TestClock.adjust("1 second")
      yield* limiter.take({ id: "active", role: "service" }, 1)
      assert.strictEqual(limiter.size(), 1)
    }))
})

describe("rate limit configuration", () => {
  it.effect("RATE_LIMIT_PER_SECOND, RATE_LIMIT_BURST and RATE_LIMIT_BY_ROLE, with defaults", () =>
    Effect.gen(function*() {
      const parse = (env: Record<string, string>) => PlatformConfig.parse(ConfigProvider.fromEnvRecord(env))
      assert.deepStrictEqual((yield* parse({})).rateLimit, { default: { perSecond: 1_000, burst: 2_000 }, byRole: {} })
      const set = yield* parse({ RATE_LIMIT_PER_SECOND: "2.5", RATE_LIMIT_BURST: "10", RATE_LIMIT_BY_ROLE: "service=2000/4000,partner:acme=50/100" })
      assert.deepStrictEqual(set.rateLimit, {
        default: { perSecond: 2.5, burst: 10 },
        byRole: { service: { perSecond: 2_000, burst: 4_000 }, "partner:acme": { perSecond: 50, burst: 100 } }
      })
      const bads: Array<Record<string, string>> = [{ RATE_LIMIT_BY_ROLE: "service=fast" }, { RATE_LIMIT_PER_SECOND: "0" }, { RATE_LIMIT_BURST: "0" }]
      for (const bad of bads) {
        yield* Effect.flip(parse(bad))
      }
    }))
})

const routes = [
  route({
    method: "GET", url: "/v1/test/ping", tags: ["test"], roles: ["service", "auditor"], summary: "costs one token",
    responses: { 200: { description: "pong" } },
    handler: () => Effect.succeed({ status: 200 })
  }),
  route({
    method: "GET", url: "/v1/test/heavy", tags: ["test"], roles: ["service"], summary: "costs two tokens", rateCost: 2,
    responses: { 200: { description: "done" } },
    handler: () => Effect.succeed({ status: 200 })
  }),
  route({
    method: "GET", url: "/v1/test/public", tags: ["test"], roles: "public", summary: "no key, no limit",
    responses: { 200: { description: "ok" } },
    handler: () => Effect.succeed({ status: 200 })
  })
]

// Slow enough that three requests in a row on a busy machine still find the bucket empty.
const rateLimit = { default: { perSecond: 0.5, burst: 2 }, byRole: { auditor: { perSecond: 1_000, burst: 1_000 } } }

const get = (path: string, key?: string) =>
  Effect.gen(function*() {
    const { url } = yield* TestApp
    const res = yield* Effect.promise(() => fetch(`${url}${path}`, { headers: key === undefined ? {} : { authorization: `Bearer ${key}` } }))
    return { status: res.status, retryAfter: res.headers.get("retry-after"), contentType: res.headers.get("content-type") ?? "", body: yield* Effect.promise(() => res.text()) }
  })

layer(layerTestApp(routes, { rateLimit }), { excludeTestServices: true, timeout: 60_000 })("per-key rate limits over HTTP", (it) => {
  it.effect("a key over its rate is 429 problem+json with Retry-After; another key is unaffected; after waiting it is served again", () =>
    Effect.gen(function*() {
      const { createKey } = yield* TestApp
      const [a, b] = [yield* createKey("service"), yield* createKey("service")]
      assert.strictEqual((yield* get("/v1/test/ping", a)).status, 200)
      assert.strictEqual((yield* get("/v1/test/ping", a)).status, 200)
      const limited = yield* get("/v1/test/ping", a)
      assert.strictEqual(limited.status, 429, limited.body)
      assert.strictEqual(limited.retryAfter, "2")
      assert.match(limited.contentType, /^application\/problem\+json/)
      const problem = JSON.parse(limited.body) as { code: string; detail: string }
      assert.strictEqual(problem.code, "rate-limited")
      assert.match(problem.detail, /0\.5 requests a second \(bursts of 2\)/)

      assert.strictEqual((yield* get("/v1/test/ping", b)).status, 200)
      yield* eventually(get("/v1/test/ping", a), (res) => res.status === 200, "30 seconds")
    }))

  it.effect("a heavier route takes more of the bucket; a role's override applies; public routes are not limited", () =>
    Effect.gen(function*() {
      const { createKey } = yield* TestApp
      const service = yield* createKey("service")
      assert.strictEqual((yield* get("/v1/test/heavy", service)).status, 200)
      assert.strictEqual((yield* get("/v1/test/ping", service)).status, 429)
      const auditor = yield* createKey("auditor")
      for (let i = 0; i < 20; i++) assert.strictEqual((yield* get("/v1/test/ping", auditor)).status, 200)
      for (let i = 0; i < 20; i++) assert.strictEqual((yield* get("/v1/test/public")).status, 200)
    }))

  it.effect("an unknown key is 401 before any limit", () =>
    Effect.gen(function*() {
      for (let i = 0; i < 5; i++) assert.strictEqual((yield* get("/v1/test/ping", "not-a-key")).status, 401)
    }))
})

layer(layerTestPlatform({ RATE_LIMIT_BY_ROLE: "auditor=0.01/2" }), { excludeTestServices: true, timeout: 60_000 })("the platform's rate limits", (it) => {
  it.effect("come from RATE_LIMIT_* and apply to its routes, streamed ones included", () =>
    Effect.gen(function*() {
      const auditor = yield* createKey("auditor")
      assert.strictEqual((yield* request({ method: "GET", url: "/v1/history", key: auditor.secret })).statusCode, 200)
      assert.strictEqual((yield* request({ method: "GET", url: "/v1/history?limit=1", key: auditor.secret })).statusCode, 200)
      const limited = yield* request({ method: "GET", url: "/v1/history/stream", key: auditor.secret })
      assertProblem(limited, 429, "rate-limited")
      assert.strictEqual(limited.headers["retry-after"], "100")
      // Other roles keep the default limit.
      const service = yield* createKey("service")
      for (let i = 0; i < 3; i++) assert.strictEqual((yield* request({ method: "GET", url: "/v1/entities/advertiser", key: service.secret })).statusCode, 200)
    }))
})
