/**
 * A platform whose settings let a message grow past what its NATS server takes (`max_payload`, 8 MB in
 * nats.conf) refuses to start, naming the setting: before, a delivery lane with chunks of 6,000 long
 * records waited for good on a chunk DELIVER could never take, and a real-time body of 2 MiB of control
 * characters was answered 503 on every retry.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Layer } from "effect"
import { largestChunkBytes } from "../../domain/delivery/Chunk.ts"
import { tooLarge } from "../../infra/nats/largestMessages.ts"
import { layerTestPlatform } from "../fixtures/platform.ts"

/** Why building the platform with `env` failed; undefined when it started. */
const startFailure = (env: Record<string, string>) =>
  Effect.scoped(Effect.exit(Layer.build(layerTestPlatform(env)))).pipe(
    Effect.map((exit) => Exit.isSuccess(exit) ? undefined : Cause.pretty(exit.cause))
  )

describe("the platform's largest messages against the server's max_payload", () => {
  it("a message fits with room for its headers, one byte more does not", () => {
    const message = { setting: "X", what: "a thing", bytes: 1_000 }
    assert.deepStrictEqual(tooLarge(2_024, [message]), [])
    const [problem] = tooLarge(2_023, [message])
    assert.match(problem!, /^X lets a thing reach 2024 bytes, above the NATS server's max_payload of 2023: lower X or raise max_payload/)
    // What decides DELIVERY_CHUNK_RECORDS: a record of a 256-character user id written in six per character.
    assert.isAbove(largestChunkBytes(1_000) / 1_000, 256 * 6)
  })

  it.live("refuses to start with chunks or real-time bodies that could pass it, naming the setting; starts with what fits", () =>
    Effect.gen(function*() {
      const chunks = yield* startFailure({ DELIVERY_CHUNK_RECORDS: "6000" })
      assert.match(chunks ?? "started", /DELIVERY_CHUNK_RECORDS lets a chunk on DELIVER reach \d+ bytes, above the NATS server's max_payload of 8388608/)
      const realtime = yield* startFailure({ REALTIME_MAX_BYTES: "2097152", INGEST_MAX_BYTES: "134217728" })
      assert.match(realtime ?? "started", /REALTIME_MAX_BYTES lets a real-time body on INGEST/)
      assert.notMatch(realtime ?? "", /DELIVERY_CHUNK_RECORDS/)
      const body = yield* startFailure({ BODY_LIMIT_BYTES: "8388608" })
      assert.match(body ?? "started", /BODY_LIMIT_BYTES lets an HTTP command on CMD reach \d+ bytes/)
      assert.isUndefined(yield* startFailure({ DELIVERY_CHUNK_RECORDS: "4000" }))
    }), { timeout: 120_000 })
})
