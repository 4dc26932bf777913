import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { assertProblem, eventually, request } from "../fixtures/http.ts"
import { layerTestPlatform } from "../fixtures/platform.ts"
import { StreamNames } from "../../domain/subjects.ts"
import { Nats, tryNats } from "../../infra/nats/Nats.ts"

// An answer deadline no command can meet: every command times out at the HTTP edge, and reaches its
// entity after its deadline, which answers Expired rather than apply it late (issue 5, item 9).
layer(layerTestPlatform({ COMMAND_TIMEOUT: "1 millis" }), { excludeTestServices: true, timeout: 60_000 })("command timeouts", (it) => {
  describe("a command whose entity does not answer in time", () => {
    it.effect("answers 504 problem+json, and the command, past its deadline, is not applied", () =>
      Effect.gen(function*() {
        const put = (key: string) =>
          request({ method: "PUT", url: "/v1/entities/advertiser/41", headers: { "idempotency-key": key }, body: { name: "Late" } })
        assertProblem(yield* put("late-1"), 504, "command-timeout")
        // The client retries with the same key: told the same, nothing is applied.
        assertProblem(yield* put("late-1"), 504, "command-timeout")
        // Once its entity has taken both off the queue, there is still no such entity.
        const { manager } = yield* Nats
        yield* eventually(tryNats("CMD", () => manager.streams.info(StreamNames.commands)), (info) => info.state.messages === 0)
        assertProblem(yield* request({ method: "GET", url: "/v1/entities/advertiser/41" }), 404, "not-found")
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
