import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { HttpServer } from "../../api/platform.ts"
import { assertInvalid, assertProblem, createKey, request } from "../fixtures/http.ts"
import { layerTestPlatform } from "../fixtures/platform.ts"

interface ApiKeyBody { readonly id: string; readonly name: string; readonly role: string; readonly createdAt: string }

const entity = "/v1/entities/advertiser/1"

layer(layerTestPlatform(), { excludeTestServices: true, timeout: 60_000 })("auth", (it) => {
  describe("authentication", () => {
    it.effect("a missing, malformed or unknown key is 401 problem+json", () =>
      Effect.gen(function*() {
        assertProblem(yield* request({ method: "GET", url: entity, key: null }), 401, "unauthorized")
        assertProblem(yield* request({ method: "GET", url: "/v1/history", key: null }), 401, "unauthorized")
        assertProblem(yield* request({ method: "PUT", url: entity, key: null, body: { name: "x" } }), 401, "unauthorized")
        assertProblem(yield* request({ method: "GET", url: entity, key: "definitely-not-a-key" }), 401, "unauthorized")
        for (const authorization of ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "bearer a b", "test-admin-key"]) {
          const { app } = yield* HttpServer
          const res = yield* Effect.promise(() => app.inject({ method: "GET", url: entity, headers: { authorization } }))
          assertProblem(res, 401, "unauthorized")
        }
        const res = yield* request({ method: "GET", url: "/v1/admin/keys", key: null })
        assert.include(assertProblem(res, 401, "unauthorized").detail ?? "", "Bearer")
      }))

    it.effect("ops endpoints are public", () =>
      Effect.gen(function*() {
        assert.strictEqual((yield* request({ method: "GET", url: "/health", key: null })).statusCode, 200)
        assert.strictEqual((yield* request({ method: "GET", url: "/ready", key: null })).statusCode, 200)
        assert.strictEqual((yield* request({ method: "GET", url: "/metrics", key: null })).statusCode, 200)
      }))
  })

  describe("API keys", () => {
    it.effect("the admin creates, lists and revokes keys; a revoked key is 401", () =>
      Effect.gen(function*() {
        const created = yield* request({ method: "POST", url: "/v1/admin/keys", body: { name: "billing", role: "service" } })
        assert.strictEqual(created.statusCode, 201, created.body)
        const body = created.json() as { key: ApiKeyBody; secret: string }
        assert.deepStrictEqual(Object.keys(body).sort(), ["key", "secret"])
        assert.strictEqual(body.key.name, "billing")
        assert.strictEqual(body.key.role, "service")
        assert.isString(body.key.id)
        assert.isFalse(Number.isNaN(Date.parse(body.key.createdAt)))
        assert.isAtLeast(body.secret.length, 16)
        const auditor = yield* createKey("auditor", "audit")

        const listed = yield* request({ method: "GET", url: "/v1/admin/keys" })
        assert.strictEqual(listed.statusCode, 200, listed.body)
        const keys = (listed.json() as { keys: ReadonlyArray<ApiKeyBody> }).keys
        assert.deepStrictEqual(keys.find((k) => k.id === body.key.id), body.key)
        assert.strictEqual(keys.find((k) => k.id === auditor.id)?.role, "auditor")
        assert.notInclude(listed.body, body.secret)
        assert.notInclude(listed.body, auditor.secret)
        for (const k of keys) assert.deepStrictEqual(Object.keys(k).sort(), ["createdAt", "id", "name", "role"])

        assert.strictEqual((yield* request({ method: "GET", url: "/v1/entities/advertiser", key: body.secret })).statusCode, 200)
        const revoked = yield* request({ method: "DELETE", url: `/v1/admin/keys/${body.key.id}` })
        assert.strictEqual(revoked.statusCode, 204, revoked.body)
        assert.strictEqual(revoked.body, "")
        assertProblem(yield* request({ method: "GET", url: "/v1/entities/advertiser", key: body.secret }), 401, "unauthorized")
        assertProblem(yield* request({ method: "PUT", url: entity, key: body.secret, body: { name: "x" } }), 401, "unauthorized")
        const after = (yield* request({ method: "GET", url: "/v1/admin/keys" })).json() as { keys: ReadonlyArray<ApiKeyBody> }
        assert.isUndefined(after.keys.find((k) => k.id === body.key.id))
        assertProblem(yield* request({ method: "DELETE", url: `/v1/admin/keys/${body.key.id}` }), 404, "not-found")
        // the other key still works
        assert.strictEqual((yield* request({ method: "GET", url: "/v1/history", key: auditor.secret })).statusCode, 200)
      }))

    it.effect("a key with an invalid role or name is 400 naming the field", () =>
      Effect.gen(function*() {
        assertInvalid(yield* request({ method: "POST", url: "/v1/admin/keys", body: { name: "x", role: "root" } }), "body", "/role")
        // an app role names an app id as apps are named: one spelling, 64 bits (stop 32's outside attack: such keys could never act)
        for (const role of ["app:07001", "app:18446744073709551616", "app:acme"]) {
          assertInvalid(yield* request({ method: "POST", url: "/v1/admin/keys", body: { name: "x", role } }), "body", "/role")
        }
        assert.strictEqual((yield* request({ method: "POST", url: "/v1/admin/keys", body: { name: "x", role: "app:18446744073709551615" } })).statusCode, 201)
        assertInvalid(yield* request({ method: "POST", url: "/v1/admin/keys", body: { name: "", role: "service" } }), "body", "/name")
        assertInvalid(yield* request({ method: "POST", url: "/v1/admin/keys", body: { role: "service" } }), "body", "/name")
      }))

    it.effect("only the admin manages keys and rebuilds", () =>
      Effect.gen(function*() {
        const service = yield* createKey("service")
        const auditor = yield* createKey("auditor")
        for (const key of [service.secret, auditor.secret]) {
          assertProblem(yield* request({ method: "POST", url: "/v1/admin/keys", key, body: { name: "x", role: "admin" } }), 403, "forbidden")
          assertProblem(yield* request({ method: "GET", url: "/v1/admin/keys", key }), 403, "forbidden")
          assertProblem(yield* request({ method: "DELETE", url: `/v1/admin/keys/${service.id}`, key }), 403, "forbidden")
        }
      }))
  })

  describe("roles", () => {
    it.effect("service may command and read the current state, but not history or asOf", () =>
      Effect.gen(function*() {
        const { secret } = yield* createKey("service")
        const url = "/v1/entities/advertiser/20"
        assert.strictEqual((yield* request({ method: "PUT", url, key: secret, body: { name: "s" } })).statusCode, 201)
        assert.strictEqual((yield* request({ method: "PATCH", url, key: secret, body: { name: "t" } })).statusCode, 200)
        const got = yield* request({ method: "GET", url, key: secret })
        assert.strictEqual(got.statusCode, 200)
        assert.strictEqual((got.json() as { revision: number }).revision, 1)
        const problem = assertProblem(yield* request({ method: "GET", url: `${url}/history`, key: secret }), 403, "forbidden")
        assert.include(problem.detail ?? "", "service")
        assertProblem(yield* request({ method: "GET", url: `${url}?asOf=${encodeURIComponent(new Date().toISOString())}`, key: secret }), 403, "forbidden")
        assertProblem(yield* request({ method: "GET", url: "/v1/history", key: secret }), 403, "forbidden")
        assert.strictEqual((yield* request({ method: "DELETE", url, key: secret })).statusCode, 200)
      }))

    it.effect("auditor may read history and asOf, but not command", () =>
      Effect.gen(function*() {
        const { secret } = yield* createKey("auditor")
        const url = "/v1/entities/advertiser/21"
        const put = yield* request({ method: "PUT", url, body: { name: "a" } })
        assert.strictEqual(put.statusCode, 201)
        assertProblem(yield* request({ method: "PUT", url, key: secret, body: { name: "b" } }), 403, "forbidden")
        assertProblem(yield* request({ method: "PATCH", url, key: secret, body: { name: "b" } }), 403, "forbidden")
        assertProblem(yield* request({ method: "DELETE", url, key: secret }), 403, "forbidden")
        const history = yield* request({ method: "GET", url: `${url}/history`, key: secret })
        assert.strictEqual(history.statusCode, 200)
        assert.strictEqual((history.json() as { events: ReadonlyArray<unknown> }).events.length, 1)
        const asOf = yield* request({ method: "GET", url: `${url}?asOf=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`, key: secret })
        assert.strictEqual(asOf.statusCode, 200, asOf.body)
        assert.deepStrictEqual(asOf.json(), put.json())
        assert.strictEqual((yield* request({ method: "GET", url, key: secret })).statusCode, 200)
        assert.strictEqual((yield* request({ method: "GET", url: "/v1/history", key: secret })).statusCode, 200)
        // nothing the auditor tried changed the entity
        assert.deepStrictEqual((yield* request({ method: "GET", url })).json(), put.json())
      }))

    it.effect("a partner or producer key may not use the entity API", () =>
      Effect.gen(function*() {
        const partner = yield* createKey("partner:acme")
        const producer = yield* createKey("producer:clicks")
        for (const key of [partner.secret, producer.secret]) {
          assertProblem(yield* request({ method: "GET", url: entity, key }), 403, "forbidden")
          assertProblem(yield* request({ method: "PUT", url: entity, key, body: { name: "x" } }), 403, "forbidden")
          assertProblem(yield* request({ method: "GET", url: "/v1/history", key }), 403, "forbidden")
        }
      }))
  })
})
