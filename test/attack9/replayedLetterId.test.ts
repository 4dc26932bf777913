/**
 * Attack (issue 9, dead letters): a record the partner keeps refusing, replayed after each refusal. A
 * request's id (its dead letter's id if refused again) holds its package id; a replay's package was
 * `replay-<dead letter id>-<uuid>`, so each replay added the destination's id and ~50 characters, until
 * the id was past the 512 characters the API takes. A replay is now `replay-<uuid>`: the id stays short.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { eventually } from "../fixtures/http.ts"
import { layerTestNatsServer } from "../fixtures/nats.ts"
import { startAttackPlatform } from "./platform.ts"

/** The longest destination id there may be. */
const ID = `d${"x".repeat(62)}`

interface DeadLetters {
  readonly items: ReadonlyArray<{ readonly id: string }>
}

describe("attack: a dead letter replayed again and again", () => {
  it.live("after four replays its id is as long as the first, so it can still be discarded by id", () =>
    Effect.gen(function*() {
      const { simulator, api, ingest } = yield* startAttackPlatform("attack9-replayed-id", { simulated: { [ID]: { rejectAll4xx: true } } })
      yield* ingest("961", [["r0", "add"]], 1)
      const created = yield* api("PUT", `/v1/entities/destination/${ID}`, {
        partnerId: "acme", url: `${simulator}/d/${ID}`, format: "single", ratePerSecond: 50, maxAttempts: 1, segmentIds: ["961"]
      })
      assert.strictEqual(created.status, 201, created.text)
      const letter = eventually(api("GET", `/v1/destinations/${ID}/dead-letters`).pipe(Effect.map((a) => (a.body as DeadLetters).items)), (items) => items.length === 1, "60 seconds")
      for (let replay = 0; replay < 4; replay++) {
        yield* letter
        assert.strictEqual((yield* api("POST", `/v1/destinations/${ID}/dead-letters/replay`, {})).status, 202)
      }
      const [last] = yield* letter
      const discarded = yield* api("DELETE", `/v1/destinations/${ID}/dead-letters/${encodeURIComponent(last!.id)}`, { reason: "the partner will never take it" })
      assert.strictEqual(discarded.status, 204, `a dead letter of ${last!.id.length} characters: ${discarded.text}`)
    }).pipe(Effect.scoped, Effect.provide(layerTestNatsServer())), { timeout: 120_000 })
})
