import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { deciders } from "../../domain/entities/index.ts"
import { assertInvalid, request } from "../fixtures/http.ts"
import { note } from "../fixtures/note.ts"
import { layerTestPlatform } from "../fixtures/platform.ts"

/** The state of an entity as the API answers it, as JSON text (JSON.parse keeps `__proto__` as a member). */
const stateText = (body: string) => JSON.stringify((JSON.parse(body) as { state: unknown }).state)

// Fields named like Object.prototype's members are data: PUT and PATCH keep them, through the bus,
// the decider, the event store and the fold, and nothing in the process gets a polluted prototype.
layer(layerTestPlatform({}, { deciders: [...deciders, note] }), { excludeTestServices: true, timeout: 60_000 })("keys named like Object.prototype's members", (it) => {
  it.effect("PUT and PATCH keep constructor, toString, hasOwnProperty and __proto__, and merge them", () =>
    Effect.gen(function*() {
      const url = "/v1/entities/note/proto-1"
      const put = yield* request({
        method: "PUT", url,
        body: `{"constructor":"c","toString":{"a":1},"hasOwnProperty":3,"__proto__":{"polluted":true},"title":"t"}`
      })
      assert.strictEqual(put.statusCode, 201, put.body)
      assert.strictEqual(stateText(put.body), `{"constructor":"c","toString":{"a":1},"hasOwnProperty":3,"__proto__":{"polluted":true},"title":"t"}`)

      const patched = yield* request({
        method: "PATCH", url, contentType: "application/merge-patch+json",
        body: `{"toString":{"b":2},"__proto__":{"more":1},"constructor":null,"valueOf":"v"}`
      })
      assert.strictEqual(patched.statusCode, 200, patched.body)
      const expected = `{"toString":{"a":1,"b":2},"hasOwnProperty":3,"__proto__":{"polluted":true,"more":1},"title":"t","valueOf":"v"}`
      assert.strictEqual(stateText(patched.body), expected)

      // what the store folds to says the same
      const got = yield* request({ method: "GET", url })
      assert.strictEqual(got.statusCode, 200, got.body)
      assert.strictEqual(stateText(got.body), expected)

      // the recorded change is exactly the patch's effect: constructor removed, the rest merged
      const history = yield* request({ method: "GET", url: `${url}/history` })
      const events = (JSON.parse(history.body) as { events: ReadonlyArray<{ data: unknown }> }).events
      assert.strictEqual(JSON.stringify(events[1]!.data), `{"changes":{"constructor":null,"toString":{"b":2},"__proto__":{"more":1},"valueOf":"v"}}`)

      const removed = yield* request({ method: "PATCH", url, body: `{"__proto__":null,"hasOwnProperty":null}` })
      assert.strictEqual(removed.statusCode, 200, removed.body)
      assert.strictEqual(stateText(removed.body), `{"toString":{"a":1,"b":2},"title":"t","valueOf":"v"}`)

      assert.isUndefined((Object.prototype as Record<string, unknown>).polluted)
      assert.isUndefined((Object.prototype as Record<string, unknown>).more)
    }))

  it.effect("a type whose schema does not name such a key refuses it as an unknown field (400 naming it)", () =>
    Effect.gen(function*() {
      const url = "/v1/entities/advertiser/700"
      assertInvalid(yield* request({ method: "PUT", url, body: `{"name":"A","__proto__":{"x":1}}` }), "body", "/__proto__")
      assertInvalid(yield* request({ method: "PUT", url, body: `{"name":"A","toString":"x"}` }), "body", "/toString")
    }))
})
