import { assert, describe, it, layer } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { buildApp } from "../../api/app.ts"
import { deny, forApp, forPartner, forTopic, topicMatches } from "../../api/authorization.ts"
import { route, type Runner } from "../../api/route.ts"
import type { ApiKeys } from "../../domain/ApiKeys.ts"
import { layerTestApp, TEST_APP_ADMIN_KEY, TestApp } from "../fixtures/app.ts"

const Partner = Schema.Struct({ partner: Schema.String })
const Topic = Schema.Struct({ topic: Schema.String })

// Shaped like the routes partner ingestion, app events and the firehose will add.
const routes = [
  route({
    method: "GET", url: "/v1/test/partners/:partner/jobs", tags: ["test"], roles: ["service", "partner"],
    summary: "a partner's own jobs", params: Partner,
    authorize: ({ principal, params }) => forPartner(principal, params.partner),
    responses: { 200: { description: "ok", schema: Partner } },
    handler: ({ params }) => Effect.succeed({ status: 200, body: params })
  }),
  route({
    method: "POST", url: "/v1/test/partners/:partner/records", tags: ["test"], roles: ["partner"],
    summary: "records that name their partner in the body too", params: Partner,
    body: Schema.Struct({ partner: Schema.String, records: Schema.Array(Schema.String) }),
    // A predicate may be an Effect, and may look at the decoded body.
    authorize: ({ principal, params, body }) =>
      Effect.sync(() => {
        const decision = forPartner(principal, params.partner)
        return decision === true && body.partner !== params.partner ? deny(`the body is for partner ${body.partner}`) : decision
      }),
    responses: { 202: { description: "accepted" } },
    handler: () => Effect.succeed({ status: 202 })
  }),
  route({
    method: "POST", url: "/v1/test/apps/:app/events", tags: ["test"], roles: ["app"],
    summary: "an app's events", params: Schema.Struct({ app: Schema.String }),
    authorize: ({ principal, params }) => forApp(principal, params.app),
    responses: { 202: { description: "accepted" } },
    handler: () => Effect.succeed({ status: 202 })
  }),
  route({
    method: "POST", url: "/v1/test/topics/:topic", tags: ["test"], roles: ["producer"],
    summary: "publish on a topic", params: Topic,
    authorize: ({ principal, params }) => forTopic(principal, params.topic),
    responses: { 202: { description: "published", schema: Topic } },
    handler: ({ params }) => Effect.succeed({ status: 202, body: params })
  })
]

const call = (method: string, path: string, key: string, body?: unknown) =>
  Effect.gen(function*() {
    const { url } = yield* TestApp
    const res = yield* Effect.promise(() =>
      fetch(`${url}${path}`, {
        method,
        headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) })
      }))
    const text = yield* Effect.promise(() => res.text())
    return { status: res.status, contentType: res.headers.get("content-type") ?? "", text }
  })

const assertForbidden = (res: { status: number; contentType: string; text: string }, reason: RegExp) => {
  assert.strictEqual(res.status, 403, res.text)
  assert.match(res.contentType, /^application\/problem\+json/)
  const problem = JSON.parse(res.text) as { code: string; detail: string }
  assert.strictEqual(problem.code, "forbidden")
  assert.match(problem.detail, reason)
}

describe("topic patterns", () => {
  it("match like NATS subjects: * one token, > one or more trailing tokens", () => {
    assert.isTrue(topicMatches("x.*", "x.y"))
    assert.isFalse(topicMatches("x.*", "x.y.z"))
    assert.isFalse(topicMatches("x.*", "x"))
    assert.isTrue(topicMatches("x.>", "x.y.z"))
    assert.isFalse(topicMatches("x.>", "x"))
    assert.isTrue(topicMatches("x.y", "x.y"))
    assert.isFalse(topicMatches("x.y", "x.yz"))
    assert.isFalse(topicMatches("x.*", "y.z"))
    assert.isTrue(topicMatches(">", "a.b"))
  })
})

layer(layerTestApp(routes), { excludeTestServices: true, timeout: 60_000 })("authorization predicates", (it) => {
  describe("partner-scoped keys", () => {
    it.effect("act for their own partner only; a cross-tenant request is 403 naming why", () =>
      Effect.gen(function*() {
        const { createKey } = yield* TestApp
        const a = yield* createKey("partner:a")
        const own = yield* call("GET", "/v1/test/partners/a/jobs", a)
        assert.strictEqual(own.status, 200, own.text)
        assert.deepStrictEqual(JSON.parse(own.text), { partner: "a" })
        assertForbidden(yield* call("GET", "/v1/test/partners/b/jobs", a), /partner:a key may act only for partner a, not for partner b/)
        assertForbidden(yield* call("POST", "/v1/test/partners/b/records", a, { partner: "b", records: [] }), /not for partner b/)
      }))

    it.effect("a predicate over the decoded body refuses a body for another partner", () =>
      Effect.gen(function*() {
        const { createKey } = yield* TestApp
        const a = yield* createKey("partner:a")
        assert.strictEqual((yield* call("POST", "/v1/test/partners/a/records", a, { partner: "a", records: ["r"] })).status, 202)
        assertForbidden(yield* call("POST", "/v1/test/partners/a/records", a, { partner: "b", records: ["r"] }), /the body is for partner b/)
      }))

    it.effect("unscoped roles the route lists, and admin, act for any partner; other roles are refused by role", () =>
      Effect.gen(function*() {
        const { createKey } = yield* TestApp
        assert.strictEqual((yield* call("GET", "/v1/test/partners/b/jobs", yield* createKey("service"))).status, 200)
        assert.strictEqual((yield* call("GET", "/v1/test/partners/b/jobs", TEST_APP_ADMIN_KEY)).status, 200)
        assertForbidden(yield* call("GET", "/v1/test/partners/b/jobs", yield* createKey("auditor")), /role auditor may not do this/)
        assertForbidden(yield* call("GET", "/v1/test/partners/b/jobs", yield* createKey("producer:b.>")), /role producer:b\.> may not do this/)
      }))
  })

  describe("app-scoped keys", () => {
    it.effect("send only their own app's events", () =>
      Effect.gen(function*() {
        const { createKey } = yield* TestApp
        const sdk = yield* createKey("app:42")
        assert.strictEqual((yield* call("POST", "/v1/test/apps/42/events", sdk)).status, 202)
        assertForbidden(yield* call("POST", "/v1/test/apps/43/events", sdk), /app:42 key may act only for app 42, not for app 43/)
      }))
  })

  describe("producer keys", () => {
    it.effect("publish only on topics their patterns match", () =>
      Effect.gen(function*() {
        const { createKey } = yield* TestApp
        const x = yield* createKey("producer:x.*,audit.>")
        assert.strictEqual((yield* call("POST", "/v1/test/topics/x.y", x)).status, 202)
        assert.strictEqual((yield* call("POST", "/v1/test/topics/audit.a.b", x)).status, 202)
        assertForbidden(yield* call("POST", "/v1/test/topics/y.z", x), /producer key for x\.\*, audit\.> may not publish on topic y\.z/)
        assertForbidden(yield* call("POST", "/v1/test/topics/x.y.z", x), /may not publish on topic x\.y\.z/)
      }))
  })
})

// The app is refused before any request could run.
const neverRun = (() => Promise.reject(new Error("never run"))) as Runner<ApiKeys>

describe("route declarations", () => {
  it.effect("a route letting in scoped keys without a predicate is refused when the app is built", () =>
    Effect.gen(function*() {
      const unscoped = route({
        method: "GET", url: "/v1/test/open", tags: ["test"], roles: ["partner"], summary: "forgot authorize",
        responses: { 200: { description: "ok" } },
        handler: () => Effect.succeed({ status: 200 })
      })
      const error = yield* Effect.flip(Effect.tryPromise(() => buildApp({ routes: [unscoped], run: neverRun })))
      assert.match(String(error.cause), /roles partner need an authorize predicate/)
    }))
})
