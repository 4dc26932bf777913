import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { assertProblem, request } from "../fixtures/http.ts"
import { layerTestPlatform } from "../fixtures/platform.ts"

const url = (type: string, id: string) => `/v1/entities/${type}/${id}`
const put = (type: string, id: string, body: unknown) => request({ method: "PUT", url: url(type, id), body })
const del = (type: string, id: string) => request({ method: "DELETE", url: url(type, id) })

layer(layerTestPlatform(), { excludeTestServices: true, timeout: 120_000 })("parents and children over HTTP", (it) => {
  it.effect("deleting a parent with live children is 409 problem+json naming them; once they are gone it deletes", () =>
    Effect.gen(function*() {
      assert.strictEqual((yield* put("advertiser", "900", { name: "A" })).statusCode, 201)
      assert.strictEqual((yield* put("campaign", "900", { advertiserId: "900", name: "C" })).statusCode, 201)
      assert.strictEqual((yield* put("strategy", "900", { campaignId: "900", name: "S", bidPrice: 1, segmentIds: [] })).statusCode, 201)

      const refused = assertProblem(yield* del("advertiser", "900"), 409, "entity-has-children")
      assert.strictEqual(refused.detail, "advertiser 900 has 1 live children (campaign 900)")
      assertProblem(yield* del("campaign", "900"), 409, "entity-has-children")
      // nothing was deleted
      assert.strictEqual((yield* request({ method: "GET", url: url("advertiser", "900") })).statusCode, 200)

      assert.strictEqual((yield* del("strategy", "900")).statusCode, 200)
      assert.strictEqual((yield* del("campaign", "900")).statusCode, 200)
      assert.strictEqual((yield* del("advertiser", "900")).statusCode, 200)
      assertProblem(yield* put("campaign", "901", { advertiserId: "900", name: "Late" }), 422, "parent-not-found")
    }))

  it.effect("a child moved to another parent frees the first; it cannot move under a parent that does not exist", () =>
    Effect.gen(function*() {
      for (const id of ["910", "911"]) assert.strictEqual((yield* put("advertiser", id, { name: id })).statusCode, 201)
      assert.strictEqual((yield* put("campaign", "910", { advertiserId: "910", name: "C" })).statusCode, 201)
      assertProblem(yield* request({ method: "PATCH", url: url("campaign", "910"), body: { advertiserId: "999910" } }), 422, "parent-not-found")
      assert.strictEqual((yield* request({ method: "PATCH", url: url("campaign", "910"), body: { advertiserId: "911" } })).statusCode, 200)
      assert.strictEqual((yield* del("advertiser", "910")).statusCode, 200)
      assertProblem(yield* del("advertiser", "911"), 409, "entity-has-children")
    }))

  it.effect("creating children while their parents are deleted, all at once: never a live child under a deleted parent", () =>
    Effect.gen(function*() {
      const ids = Array.from({ length: 20 }, (_, i) => String(920 + i))
      yield* Effect.forEach(ids, (id) => Effect.map(put("advertiser", id, { name: id }), (res) => assert.strictEqual(res.statusCode, 201, res.body)), { concurrency: 4 })
      const outcomes = yield* Effect.forEach(ids, (id) =>
        Effect.all([put("campaign", id, { advertiserId: id, name: id }), del("advertiser", id)], { concurrency: "unbounded" }), { concurrency: "unbounded" })
      for (const [i, [child, parent]] of outcomes.entries()) {
        // exactly one of the two wins: the child (the deletion is 409) or the deletion (the child is 422)
        const statuses = [child.statusCode, parent.statusCode]
        assert.isTrue(
          (statuses[0] === 201 && statuses[1] === 409) || (statuses[0] === 422 && statuses[1] === 200),
          `pair ${ids[i]}: ${JSON.stringify(statuses)} ${child.body} ${parent.body}`
        )
        const live = (yield* request({ method: "GET", url: url("campaign", ids[i]!) })).statusCode === 200
        const parentLive = (yield* request({ method: "GET", url: url("advertiser", ids[i]!) })).statusCode === 200
        assert.isFalse(live && !parentLive, `campaign ${ids[i]} lives under a deleted advertiser`)
      }
    }))
})
