import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { assertInvalid, assertProblem, createKey, eventually, request } from "../fixtures/http.ts"
import { deliverChunks } from "../fixtures/deliverContents.ts"
import { layerTestPlatform } from "../fixtures/platform.ts"
import { added, appendProfileEvents } from "../fixtures/segmentEvents.ts"

const S = "18446744073709551615"

// Nothing delivers (what DELIVER holds stays), and a refresh is refused past 3 waiting records.
layer(layerTestPlatform({ DELIVERY_ENABLED: "false", DELIVERY_REFRESH_MAX_BACKLOG: "3" }), { excludeTestServices: true, timeout: 60_000 })("delivery packages API", (it) => {
  it.effect("POST /v1/destinations/{id}/refresh answers 202 with the package, which reaches DELIVER; 503 while its backlog is full; 404, 400 and 403 as problem+json", () =>
    Effect.gen(function*() {
      const service = yield* createKey("service")
      // Through the API, as an operator would: the partner, then its destination taking S.
      assert.strictEqual((yield* request({ method: "PUT", url: "/v1/entities/partner/acme", body: { name: "Acme" } })).statusCode, 201)
      const created = yield* request({
        method: "PUT",
        url: "/v1/entities/destination/acme-out",
        body: { partnerId: "acme", url: "http://127.0.0.1:9/in", format: "single", ratePerSecond: 10, segmentIds: [S] }
      })
      assert.strictEqual(created.statusCode, 201, created.body)
      yield* appendProfileEvents("maid:p1", added("a", [S]), added("b", [S]))
      yield* appendProfileEvents("maid:p2", added("a", [S]))
      const refresh = (id: string, key = service.secret) => request({ method: "POST", url: `/v1/destinations/${id}/refresh`, key })

      const onDeliver = Effect.map(deliverChunks("acme-out"), (cs) => cs.map(({ chunk }) => chunk))
      // Packaging follows the event store: refresh once it has sent both adds as they happened.
      yield* eventually(onDeliver, (cs) => cs.flatMap((c) => c.records).length === 2, "30 seconds")
      const accepted = yield* refresh("acme-out")
      assert.strictEqual(accepted.statusCode, 202, accepted.body)
      const body = accepted.json() as { packageId: string; records: number }
      assert.match(body.packageId, /^refresh-/)
      assert.strictEqual(body.records, 2)

      const chunks = yield* eventually(onDeliver, (cs) => cs.some((c) => c.packageId === body.packageId), "30 seconds")
      const records = chunks.filter((c) => c.packageId === body.packageId).flatMap((c) => c.records)
      assert.deepStrictEqual(records.map((r) => `${r.idKind} ${r.userId} ${r.op}`).sort(), ["maid p1 add", "maid p2 add"])

      // 4 records wait on DELIVER now: another refresh would pile up
      const refused = yield* refresh("acme-out")
      assertProblem(refused, 503, "overloaded")
      assert.strictEqual(refused.headers["retry-after"], "60")

      assertProblem(yield* refresh("nobody-here"), 404, "entity-not-found")
      assertInvalid(yield* refresh("Not_A_Slug"), "path", "/id")
      const partner = yield* createKey("partner:acme")
      assert.strictEqual((yield* refresh("acme-out", partner.secret)).statusCode, 403)

      // Nor does a change of its segments (each added one packages every member) or its schedule, while
      // so much waits: before stop 28, toggling segmentIds took a backlog to 3.6 times the bound.
      const toggled = yield* request({ method: "PATCH", url: "/v1/entities/destination/acme-out", body: { segmentIds: ["7"] }, key: service.secret })
      assertProblem(toggled, 503, "overloaded")
      const renamed = yield* request({ method: "PATCH", url: "/v1/entities/destination/acme-out", body: { timeoutMs: 5_000, segmentIds: [S] }, key: service.secret })
      assert.strictEqual(renamed.statusCode, 200, renamed.body)
      const scheduled = yield* request({ method: "PATCH", url: "/v1/entities/destination/acme-out", body: { refreshEvery: 60 }, key: service.secret })
      assert.strictEqual(scheduled.statusCode, 200, scheduled.body)
    }))
})
