import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { eventually, request } from "../fixtures/http.ts"
import { layerTestPlatform } from "../fixtures/platform.ts"

layer(layerTestPlatform(), { excludeTestServices: true, timeout: 60_000 })("ops", (it) => {
  describe("health and readiness", () => {
    it.effect("/health answers 200 ok", () =>
      Effect.gen(function*() {
        const res = yield* request({ method: "GET", url: "/health", key: null })
        assert.strictEqual(res.statusCode, 200)
        assert.deepStrictEqual(res.json(), { status: "ok" })
      }))

    it.effect("/ready answers 200 once NATS, the event store, the relay and every shard's owner are ok", () =>
      Effect.gen(function*() {
        // the relay and the shards are taken by their owners just after start
        const res = yield* eventually(request({ method: "GET", url: "/ready", key: null }), (res) => res.statusCode === 200, "30 seconds")
        assert.deepStrictEqual(res.json(), { status: "ok", checks: { nats: "ok", eventStore: "ok", relay: "ok", shards: "ok" } })
      }))
  })

  describe("metrics", () => {
    it.effect("/metrics exposes HTTP, command, relay and actor series in Prometheus text", () =>
      Effect.gen(function*() {
        const put = yield* request({ method: "PUT", url: "/v1/entities/advertiser/1", body: { name: "m" } })
        assert.strictEqual(put.statusCode, 201)
        const metrics = yield* eventually(
          request({ method: "GET", url: "/metrics", key: null }),
          (res) => /^tributary_relay_events_total[{ ]/m.test(res.body) && /^tributary_relay_events_total(\{[^}]*\})? [1-9]/m.test(res.body)
        )
        assert.strictEqual(metrics.statusCode, 200)
        assert.match(String(metrics.headers["content-type"]), /^text\/plain/)
        const body = metrics.body
        assert.match(body, /^tributary_http_request_duration_seconds_bucket\{[^}]*route="\/v1\/entities\/advertiser\/:id"[^}]*\} \d+/m)
        assert.match(body, /^tributary_http_request_duration_seconds_count\{[^}]*method="PUT"[^}]*status="201"[^}]*\} [1-9]/m)
        assert.match(body, /^tributary_commands_total\{[^}]*outcome="created"[^}]*type="advertiser"[^}]*\} [1-9]|^tributary_commands_total\{[^}]*type="advertiser"[^}]*outcome="created"[^}]*\} [1-9]/m)
        assert.match(body, /^tributary_relay_\w+/m)
        assert.match(body, /^tributary_actor_\w+/m)
        assert.match(body, /^# TYPE tributary_http_request_duration_seconds histogram/m)
      }))
  })

  describe("docs", () => {
    it.effect("/docs serves the UI and /docs/json is an OpenAPI 3.1 document listing the entity paths", () =>
      Effect.gen(function*() {
        let ui = yield* request({ method: "GET", url: "/docs", key: null })
        for (let hops = 0; ui.statusCode >= 300 && ui.statusCode < 400 && hops < 3; hops++) {
          const location = String(ui.headers.location)
          ui = yield* request({ method: "GET", url: location.startsWith("/") ? location : `/docs/${location.replace(/^\.\//, "")}`, key: null })
        }
        assert.strictEqual(ui.statusCode, 200, ui.body)
        assert.match(String(ui.headers["content-type"]), /text\/html/)
        assert.include(ui.body, "swagger")

        const res = yield* request({ method: "GET", url: "/docs/json", key: null })
        assert.strictEqual(res.statusCode, 200)
        const doc = res.json() as { openapi: string; paths: Record<string, Record<string, { parameters?: ReadonlyArray<{ name: string; in: string }>; responses: Record<string, unknown> }>> }
        assert.strictEqual(doc.openapi, "3.1.0")
        for (const type of ["advertiser", "campaign", "strategy"]) {
          assert.deepStrictEqual(Object.keys(doc.paths[`/v1/entities/${type}/{id}`] ?? {}).sort(), ["delete", "get", "patch", "put"])
          assert.property(doc.paths[`/v1/entities/${type}/{id}/history`] ?? {}, "get")
          assert.property(doc.paths[`/v1/entities/${type}`] ?? {}, "get")
        }
        assert.property(doc.paths["/v1/history"] ?? {}, "get")
        assert.property(doc.paths["/v1/admin/keys"] ?? {}, "post")
        const put = doc.paths["/v1/entities/advertiser/{id}"]!.put!
        assert.isTrue(put.parameters!.some((p) => p.name === "id" && p.in === "path"))
        assert.isTrue(put.parameters!.some((p) => p.name === "if-match" && p.in === "header"))
        assert.includeMembers(Object.keys(put.responses), ["200", "201", "400", "412", "422"])
      }))
  })
})
