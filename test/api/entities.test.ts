import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { type EntityBody, assertInvalid, assertProblem, createKey, eventually, request } from "../fixtures/http.ts"
import { layerTestPlatform } from "../fixtures/platform.ts"


const entityUrl = (type: string, id: string) => `/v1/entities/${type}/${id}`

const historyLength = (type: string, id: string) =>
  Effect.gen(function*() {
    const res = yield* request({ method: "GET", url: `${entityUrl(type, id)}/history?limit=1000` })
    assert.strictEqual(res.statusCode, 200, res.body)
    return (res.json() as { events: ReadonlyArray<unknown> }).events.length
  })

const assertEntity = (res: { statusCode: number; headers: Record<string, unknown>; json: () => unknown; body: string }, status: number, expected: Omit<EntityBody, "updatedAt">) => {
  assert.strictEqual(res.statusCode, status, res.body)
  assert.strictEqual(res.headers.etag, `"${expected.revision}"`)
  const body = res.json() as EntityBody
  assert.deepStrictEqual(Object.keys(body).sort(), ["id", "revision", "state", "type", "updatedAt"])
  assert.deepStrictEqual({ type: body.type, id: body.id, revision: body.revision, state: body.state }, expected)
  assert.isString(body.updatedAt)
  assert.strictEqual(new Date(body.updatedAt!).toISOString(), body.updatedAt)
  return body
}

layer(layerTestPlatform(), { excludeTestServices: true, timeout: 60_000 })("entities API", (it) => {
  describe("PUT, PATCH, DELETE", () => {
    it.effect("PUT creates (201) then replaces (200), answering the entity with its revision as ETag", () =>
      Effect.gen(function*() {
        const created = yield* request({ method: "PUT", url: entityUrl("advertiser", "100"), body: { name: "Acme", currency: "EUR" } })
        assertEntity(created, 201, { type: "advertiser", id: "100", revision: 0, state: { name: "Acme", currency: "EUR" } })
        const replaced = yield* request({ method: "PUT", url: entityUrl("advertiser", "100"), body: { name: "Acme 2", status: "active" } })
        const body = assertEntity(replaced, 200, { type: "advertiser", id: "100", revision: 1, state: { name: "Acme 2", status: "active" } })
        const got = yield* request({ method: "GET", url: entityUrl("advertiser", "100") })
        assertEntity(got, 200, { type: "advertiser", id: "100", revision: 1, state: { name: "Acme 2", status: "active" } })
        assert.deepStrictEqual(got.json(), body)
        // the same fields again change nothing: same revision, no event
        const same = yield* request({ method: "PUT", url: entityUrl("advertiser", "100"), body: { name: "Acme 2", status: "active" } })
        assertEntity(same, 200, { type: "advertiser", id: "100", revision: 1, state: { name: "Acme 2", status: "active" } })
        assert.strictEqual(yield* historyLength("advertiser", "100"), 2)
      }))

    it.effect("PATCH merge-patches with application/merge-patch+json and application/json; null removes a field", () =>
      Effect.gen(function*() {
        const url = entityUrl("advertiser", "101")
        yield* request({ method: "PUT", url, body: { name: "Beta", domain: "beta.example", currency: "USD" } })
        const merged = yield* request({
          method: "PATCH", url, contentType: "application/merge-patch+json", body: { currency: null, status: "paused" }
        })
        assertEntity(merged, 200, { type: "advertiser", id: "101", revision: 1, state: { name: "Beta", domain: "beta.example", status: "paused" } })
        const json = yield* request({ method: "PATCH", url, contentType: "application/json", body: { name: "Beta 2", domain: null } })
        assertEntity(json, 200, { type: "advertiser", id: "101", revision: 2, state: { name: "Beta 2", status: "paused" } })
        const got = yield* request({ method: "GET", url })
        assertEntity(got, 200, { type: "advertiser", id: "101", revision: 2, state: { name: "Beta 2", status: "paused" } })
      }))

    it.effect("PATCH validates the patched entity: an invalid result is a 400 naming the field and changes nothing", () =>
      Effect.gen(function*() {
        const url = entityUrl("advertiser", "102")
        yield* request({ method: "PUT", url, body: { name: "Gamma" } })
        assertInvalid(yield* request({ method: "PATCH", url, contentType: "application/merge-patch+json", body: { status: "bogus" } }), "body", "/status", "invalid-entity")
        assertInvalid(yield* request({ method: "PATCH", url, body: { name: null } }), "body", "/name", "invalid-entity")
        assertInvalid(yield* request({ method: "PATCH", url, body: { extra: 1 } }), "body", "/extra", "invalid-entity")
        assertEntity(yield* request({ method: "GET", url }), 200, { type: "advertiser", id: "102", revision: 0, state: { name: "Gamma" } })
        assert.strictEqual(yield* historyLength("advertiser", "102"), 1)
      }))

    it.effect("PATCH of an entity that does not exist is 404", () =>
      Effect.gen(function*() {
        assertProblem(yield* request({ method: "PATCH", url: entityUrl("advertiser", "103"), body: { name: "x" } }), 404, "entity-not-found")
        assertProblem(yield* request({ method: "DELETE", url: entityUrl("advertiser", "103") }), 404, "entity-not-found")
        assertProblem(yield* request({ method: "GET", url: entityUrl("advertiser", "103") }), 404, "not-found")
      }))

    it.effect("DELETE answers the deleted entity; GET is then 404; PUT recreates it at the next revision", () =>
      Effect.gen(function*() {
        const url = entityUrl("advertiser", "104")
        yield* request({ method: "PUT", url, body: { name: "Delta" } })
        const deleted = yield* request({ method: "DELETE", url })
        assert.strictEqual(deleted.statusCode, 200, deleted.body)
        assert.strictEqual(deleted.headers.etag, '"1"')
        assert.deepStrictEqual({ ...(deleted.json() as EntityBody), updatedAt: null }, { type: "advertiser", id: "104", revision: 1, state: null, updatedAt: null })
        assertProblem(yield* request({ method: "GET", url }), 404, "not-found")
        assertProblem(yield* request({ method: "DELETE", url }), 404, "entity-not-found")
        assertProblem(yield* request({ method: "PATCH", url, body: { name: "x" } }), 404, "entity-not-found")
        const recreated = yield* request({ method: "PUT", url, body: { name: "Delta again" } })
        assertEntity(recreated, 201, { type: "advertiser", id: "104", revision: 2, state: { name: "Delta again" } })
        assertEntity(yield* request({ method: "GET", url }), 200, { type: "advertiser", id: "104", revision: 2, state: { name: "Delta again" } })
        assert.strictEqual(yield* historyLength("advertiser", "104"), 3)
      }))
  })

  describe("If-Match", () => {
    it.effect("a stale revision is 412 and changes nothing; the current revision succeeds", () =>
      Effect.gen(function*() {
        const url = entityUrl("advertiser", "110")
        yield* request({ method: "PUT", url, body: { name: "v0" } })
        yield* request({ method: "PATCH", url, body: { name: "v1" } })
        const stale = yield* request({ method: "PUT", url, headers: { "if-match": '"0"' }, body: { name: "stale" } })
        const problem = assertProblem(stale, 412, "revision-mismatch")
        assert.include(problem.detail ?? "", "revision 1")
        assertProblem(yield* request({ method: "PATCH", url, headers: { "if-match": '"0"' }, body: { name: "stale" } }), 412, "revision-mismatch")
        assertProblem(yield* request({ method: "DELETE", url, headers: { "if-match": '"5"' } }), 412, "revision-mismatch")
        assertEntity(yield* request({ method: "GET", url }), 200, { type: "advertiser", id: "110", revision: 1, state: { name: "v1" } })
        assert.strictEqual(yield* historyLength("advertiser", "110"), 2)

        const current = yield* request({ method: "PATCH", url, headers: { "if-match": '"1"' }, body: { name: "v2" } })
        assertEntity(current, 200, { type: "advertiser", id: "110", revision: 2, state: { name: "v2" } })
        // a weak tag never matches (RFC 9110 §13.1.1): refused, nothing changes
        assertInvalid(yield* request({ method: "PUT", url, headers: { "if-match": 'W/"2"' }, body: { name: "x" } }), "header", "/if-match")
        const strong = yield* request({ method: "PUT", url, headers: { "if-match": '"2"' }, body: { name: "v3" } })
        assertEntity(strong, 200, { type: "advertiser", id: "110", revision: 3, state: { name: "v3" } })
        const del = yield* request({ method: "DELETE", url, headers: { "if-match": '"3"' } })
        assert.strictEqual(del.statusCode, 200, del.body)
        assert.strictEqual(yield* historyLength("advertiser", "110"), 5)
      }))

    it.effect("If-Match on a PUT of an entity that does not exist is 412", () =>
      Effect.gen(function*() {
        const url = entityUrl("advertiser", "111")
        assertProblem(yield* request({ method: "PUT", url, headers: { "if-match": '"0"' }, body: { name: "x" } }), 412, "revision-mismatch")
        assertProblem(yield* request({ method: "GET", url }), 404, "not-found")
      }))
  })

  describe("Idempotency-Key", () => {
    it.effect("the same key twice answers the same result and appends once", () =>
      Effect.gen(function*() {
        const url = entityUrl("advertiser", "120")
        const first = yield* request({ method: "PUT", url, headers: { "idempotency-key": "create-120" }, body: { name: "Once" } })
        const again = yield* request({ method: "PUT", url, headers: { "idempotency-key": "create-120" }, body: { name: "Once" } })
        assertEntity(first, 201, { type: "advertiser", id: "120", revision: 0, state: { name: "Once" } })
        assert.strictEqual(again.statusCode, first.statusCode)
        assert.strictEqual(again.headers.etag, first.headers.etag)
        assert.deepStrictEqual(again.json(), first.json())
        assert.strictEqual(yield* historyLength("advertiser", "120"), 1)
      }))

    it.effect("a repeated key is answered from the first result, not applied again; a different key applies", () =>
      Effect.gen(function*() {
        const url = entityUrl("advertiser", "121")
        yield* request({ method: "PUT", url, body: { name: "start" } })
        const first = yield* request({ method: "PATCH", url, headers: { "idempotency-key": "k1" }, body: { name: "A" } })
        assertEntity(first, 200, { type: "advertiser", id: "121", revision: 1, state: { name: "A" } })
        yield* request({ method: "PATCH", url, body: { name: "B" } })
        const retried = yield* request({ method: "PATCH", url, headers: { "idempotency-key": "k1" }, body: { name: "A" } })
        assert.strictEqual(retried.statusCode, 200)
        assert.deepStrictEqual(retried.json(), first.json())
        assert.strictEqual(retried.headers.etag, '"1"')
        assertEntity(yield* request({ method: "GET", url }), 200, { type: "advertiser", id: "121", revision: 2, state: { name: "B" } })
        assert.strictEqual(yield* historyLength("advertiser", "121"), 3)

        const other = yield* request({ method: "PATCH", url, headers: { "idempotency-key": "k2" }, body: { name: "A" } })
        assertEntity(other, 200, { type: "advertiser", id: "121", revision: 3, state: { name: "A" } })
        assert.strictEqual(yield* historyLength("advertiser", "121"), 4)
      }))

    it.effect("a key sent twice in one request is 400 naming it, not the key `a, b` (stop 32's outside attack)", () =>
      Effect.gen(function*() {
        const url = entityUrl("advertiser", "126")
        assertInvalid(yield* request({ method: "PUT", url, headers: { "idempotency-key": ["a", "b"] }, body: { name: "A" } }), "header", "/idempotency-key")
        assertProblem(yield* request({ method: "GET", url }), 404, "not-found")
        // one header `a, b` is one key
        assertEntity(yield* request({ method: "PUT", url, headers: { "idempotency-key": "a, b" }, body: { name: "A" } }), 201, { type: "advertiser", id: "126", revision: 0, state: { name: "A" } })
      }))

    it.effect("a key reused for a different request is 422 and applies nothing", () =>
      Effect.gen(function*() {
        const url = entityUrl("advertiser", "125")
        yield* request({ method: "PUT", url, headers: { "idempotency-key": "k-reused" }, body: { name: "A" } })
        assertProblem(yield* request({ method: "PUT", url, headers: { "idempotency-key": "k-reused" }, body: { name: "B" } }), 422, "idempotency-key-reused")
        assertProblem(yield* request({ method: "DELETE", url, headers: { "idempotency-key": "k-reused" } }), 422, "idempotency-key-reused")
        assertEntity(yield* request({ method: "GET", url }), 200, { type: "advertiser", id: "125", revision: 0, state: { name: "A" } })
        assert.strictEqual(yield* historyLength("advertiser", "125"), 1)
      }))

    it.effect("the same key on another entity is another command", () =>
      Effect.gen(function*() {
        const a = yield* request({ method: "PUT", url: entityUrl("advertiser", "122"), headers: { "idempotency-key": "shared" }, body: { name: "A" } })
        const b = yield* request({ method: "PUT", url: entityUrl("advertiser", "123"), headers: { "idempotency-key": "shared" }, body: { name: "A" } })
        assertEntity(a, 201, { type: "advertiser", id: "122", revision: 0, state: { name: "A" } })
        assertEntity(b, 201, { type: "advertiser", id: "123", revision: 0, state: { name: "A" } })
        assert.strictEqual(yield* historyLength("advertiser", "122"), 1)
        assert.strictEqual(yield* historyLength("advertiser", "123"), 1)
      }))

    it.effect("the same key from another API key is another command", () =>
      Effect.gen(function*() {
        const service = yield* createKey("service")
        const url = entityUrl("advertiser", "124")
        yield* request({ method: "PUT", url, body: { name: "start" } })
        const mine = yield* request({ method: "PATCH", url, headers: { "idempotency-key": "k" }, body: { name: "A" } })
        yield* request({ method: "PATCH", url, body: { name: "B" } })
        const theirs = yield* request({ method: "PATCH", url, key: service.secret, headers: { "idempotency-key": "k" }, body: { name: "A" } })
        assertEntity(mine, 200, { type: "advertiser", id: "124", revision: 1, state: { name: "A" } })
        assertEntity(theirs, 200, { type: "advertiser", id: "124", revision: 3, state: { name: "A" } })
      }))
  })

  describe("read-your-writes", () => {
    it.effect("a GET right after each acknowledged write returns that revision", () =>
      Effect.forEach(["130", "131", "132", "133"], (id) =>
        Effect.gen(function*() {
          const url = entityUrl("advertiser", id)
          const created = yield* request({ method: "PUT", url, body: { name: "n0" } })
          assert.strictEqual(created.statusCode, 201, created.body)
          for (let i = 1; i <= 25; i++) {
            const write = i % 5 === 0
              ? yield* request({ method: "PUT", url, body: { name: `n${i}`, domain: `d${i}.example` } })
              : yield* request({ method: "PATCH", url, body: { name: `n${i}` } })
            assert.strictEqual(write.statusCode, 200, write.body)
            const written = write.json() as EntityBody
            assert.strictEqual(written.revision, i)
            const read = yield* request({ method: "GET", url })
            assert.strictEqual(read.statusCode, 200, read.body)
            assert.deepStrictEqual(read.json(), written)
            assert.strictEqual(read.headers.etag, `"${i}"`)
          }
        }), { concurrency: 4, discard: true }))
  })

  describe("parents", () => {
    it.effect("a campaign whose advertiser does not exist is 422; with an existing advertiser it is created", () =>
      Effect.gen(function*() {
        const missing = yield* request({ method: "PUT", url: entityUrl("campaign", "140"), body: { advertiserId: "999140", name: "Spring" } })
        const problem = assertProblem(missing, 422, "parent-not-found")
        assert.include(problem.detail ?? "", "999140")
        assertProblem(yield* request({ method: "GET", url: entityUrl("campaign", "140") }), 404, "not-found")

        yield* request({ method: "PUT", url: entityUrl("advertiser", "140"), body: { name: "Parent" } })
        const created = yield* request({ method: "PUT", url: entityUrl("campaign", "140"), body: { advertiserId: "140", name: "Spring", budget: 1000 } })
        assertEntity(created, 201, { type: "campaign", id: "140", revision: 0, state: { advertiserId: "140", name: "Spring", budget: 1000 } })
        const strategy = yield* request({
          method: "PUT", url: entityUrl("strategy", "140"), body: { campaignId: "140", name: "S", bidPrice: 1.5, segmentIds: ["1", "18446744073709551615"] }
        })
        assert.strictEqual(strategy.statusCode, 201, strategy.body)

        // a patch moving the campaign to a missing advertiser is refused too
        assertProblem(yield* request({ method: "PATCH", url: entityUrl("campaign", "140"), body: { advertiserId: "999141" } }), 422, "parent-not-found")
        // a deleted advertiser no longer exists (its children go first)
        assert.strictEqual((yield* request({ method: "DELETE", url: entityUrl("strategy", "140") })).statusCode, 200)
        assert.strictEqual((yield* request({ method: "DELETE", url: entityUrl("campaign", "140") })).statusCode, 200)
        assert.strictEqual((yield* request({ method: "DELETE", url: entityUrl("advertiser", "140") })).statusCode, 200)
        assertProblem(yield* request({ method: "PUT", url: entityUrl("campaign", "141"), body: { advertiserId: "140", name: "Late" } }), 422, "parent-not-found")
      }))
  })
})

/** Entity actors passivated in this process so far (/metrics). */
const passivations = Effect.map(request({ method: "GET", url: "/metrics", key: null }), (res) =>
  Number(/^tributary_actor_passivations_total\{[^}]*kind="entity"[^}]*\} (\d+)/m.exec(res.body)?.[1] ?? 0))

/** Waits until an entity actor was passivated after `before` of them: no sleep that only hopes it happened. */
const passivatedSince = (before: number) =>
  eventually(passivations, (now) => now > before, "30 seconds")

// Entity actors passivated after 100 ms idle: a new incarnation must still recognise recent commands.
layer(layerTestPlatform({ ENTITY_IDLE_TIMEOUT: "100 millis" }), { excludeTestServices: true, timeout: 60_000 })("entities API, passivating actors", (it) => {
  it.effect("an Idempotency-Key repeated after the entity actor was passivated is still answered from the first result", () =>
    Effect.gen(function*() {
      const url = entityUrl("advertiser", "150")
      const before = yield* passivations
      const created = yield* request({ method: "PUT", url, headers: { "idempotency-key": "p1" }, body: { name: "A" } })
      assertEntity(created, 201, { type: "advertiser", id: "150", revision: 0, state: { name: "A" } })
      yield* request({ method: "PATCH", url, body: { name: "B" } })
      const passivated = yield* passivatedSince(before) // the only live entity actor of this platform
      const retried = yield* request({ method: "PUT", url, headers: { "idempotency-key": "p1" }, body: { name: "A" } })
      assert.strictEqual(retried.statusCode, 201, retried.body)
      assert.deepStrictEqual(retried.json(), created.json())
      assertEntity(yield* request({ method: "GET", url }), 200, { type: "advertiser", id: "150", revision: 1, state: { name: "B" } })
      assert.strictEqual(yield* historyLength("advertiser", "150"), 2)
      // and it goes on taking new commands, after its next passivation too
      yield* passivatedSince(passivated)
      assertEntity(yield* request({ method: "PATCH", url, body: { name: "C" } }), 200, { type: "advertiser", id: "150", revision: 2, state: { name: "C" } })
    }))
})
