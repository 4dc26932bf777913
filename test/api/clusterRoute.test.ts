import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { Cluster } from "../../domain/Cluster.ts"
import { defaultShards } from "../../domain/shards.ts"
import { assertProblem, createKey, eventually, request } from "../fixtures/http.ts"
import { layerTestPlatform } from "../fixtures/platform.ts"

layer(layerTestPlatform(), { excludeTestServices: true, timeout: 60_000 })("GET /v1/admin/cluster", (it) => {
  describe("one process", () => {
    it.effect("lists it with every shard", () =>
      Effect.gen(function*() {
        const cluster = yield* Cluster
        const res = yield* eventually(request({ method: "GET", url: "/v1/admin/cluster" }), (r) => r.json().processes?.[0]?.shards?.length === defaultShards)
        assert.deepStrictEqual(res.json(), { processes: [{ id: cluster.self, shards: Array.from({ length: defaultShards }, (_, i) => i) }] })
      }))

    it.effect("is for admins only, and documented in OpenAPI", () =>
      Effect.gen(function*() {
        const service = yield* createKey("service")
        assertProblem(yield* request({ method: "GET", url: "/v1/admin/cluster", key: service.secret }), 403, "forbidden")
        const doc = (yield* request({ method: "GET", url: "/docs/json", key: null })).json() as { paths: Record<string, Record<string, { responses: Record<string, unknown> }>> }
        assert.includeMembers(Object.keys(doc.paths["/v1/admin/cluster"]?.get?.responses ?? {}), ["200", "401", "403"])
      }))
  })
})
