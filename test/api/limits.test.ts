import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { assertProblem, eventually, request } from "../fixtures/http.ts"
import { layerTestPlatform } from "../fixtures/platform.ts"

// An answer deadline no command can meet: every command times out at the HTTP edge, yet is applied.
layer(layerTestPlatform({ COMMAND_TIMEOUT: "1 millis" }), { excludeTestServices: true, timeout: 60_000 })("command timeouts", (it) => {
  describe("a command whose entity does not answer in time", () => {
    it.effect("answers 504 problem+json, and the command is still applied exactly once", () =>
      Effect.gen(function*() {
        const put = (key: string) =>
          request({ method: "PUT", url: "/v1/entities/advertiser/41", headers: { "idempotency-key": key }, body: { name: "Late" } })
        assertProblem(yield* put("late-1"), 504, "command-timeout")
        const entity = yield* eventually(request({ method: "GET", url: "/v1/entities/advertiser/41" }), (res) => res.statusCode === 200)
        assert.strictEqual(entity.json().revision, 0)
        // The client retries with the same key: whatever it is told, nothing is applied twice.
        yield* put("late-1")
        const history = yield* request({ method: "GET", url: "/v1/entities/advertiser/41/history" })
        assert.strictEqual(history.json().events.length, 1)
      }))
  })
})

layer(layerTestPlatform({ MAX_INFLIGHT_COMMANDS: "0" }), { excludeTestServices: true, timeout: 60_000 })("command admission", (it) => {
  describe("more commands in flight than MAX_INFLIGHT_COMMANDS", () => {
    it.effect("answers 503 with Retry-After and applies nothing", () =>
      Effect.gen(function*() {
        const res = yield* request({ method: "PUT", url: "/v1/entities/advertiser/42", body: { name: "Busy" } })
        assertProblem(res, 503, "overloaded")
        assert.strictEqual(res.headers["retry-after"], "1")
        assertProblem(yield* request({ method: "GET", url: "/v1/entities/advertiser/42" }), 404, "not-found")
      }))
  })
})
