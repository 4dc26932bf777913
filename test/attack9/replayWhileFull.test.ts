/**
 * Attack (stop 21's outside attack on the stream bounds): a destination refusing every record fills
 * its dead letters to their bound, so its lane waits, and the package publisher keeps the lane full on
 * DELIVER. A replay then went straight onto that full lane and was refused (503) for good: the lane
 * waited for room on DLQ, the replay for room on the lane, and only discarding letters (giving up
 * records) moved it. Replays now go into the package outbox; the letters leave DLQ, the lane goes on.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { eventually } from "../fixtures/http.ts"
import { layerTestNatsServer } from "../fixtures/nats.ts"
import { configureDestination, receivedRequests } from "../fixtures/partnerSimulator.ts"
import { startAttackPlatform, users } from "./platform.ts"

const USERS = 40

interface Status {
  readonly deadLetters: number
  readonly backlog: number
  readonly deadLettersRefused: boolean
}

describe("attack: dead letters replayed while their lane is full", () => {
  it.live("a replay is taken while the destination waits on DLQ and its lane on DELIVER is full; every record then reaches the partner once", () =>
    Effect.gen(function*() {
      const { simulator, api, ingest } = yield* startAttackPlatform("attack9-replay-full", {
        simulated: { rf: { rejectAll4xx: true } },
        env: { DELIVERY_DEAD_LETTERS_PER_DESTINATION: "5", DELIVER_LANE_MAX_CHUNKS: "2", DELIVERY_CHUNK_RECORDS: "2" }
      })
      yield* ingest("602", users("f", USERS).map((u) => [u, "add"] as const), USERS)
      const created = yield* api("PUT", "/v1/entities/destination/rf", {
        partnerId: "acme", url: `${simulator}/d/rf`, format: "single", ratePerSecond: 200, maxAttempts: 1, segmentIds: ["602"]
      })
      assert.strictEqual(created.status, 201, created.text)
      const status = Effect.map(api("GET", "/v1/destinations/rf/status"), (a) => a.body as Status)
      // stuck: its letters at their bound, its lane full, the rest waiting in the outbox
      const stuck = yield* eventually(status, (s) => s.deadLettersRefused && s.deadLetters === 5, "60 seconds")
      assert.isAbove(stuck.backlog, 0)

      // the partner mended, the letters replayed (taken at once, 202) until every record has come
      yield* configureDestination(simulator, "rf", { rejectAll4xx: false })
      const received = Effect.map(receivedRequests(simulator, "rf"), (requests) => requests.flatMap((r) => r.records.map((record) => (record as { userId: string }).userId)))
      const all = yield* eventually(
        Effect.flatMap(api("POST", "/v1/destinations/rf/dead-letters/replay", {}), (answer) => {
          assert.strictEqual(answer.status, 202, answer.text)
          return received
        }),
        (userIds) => userIds.length >= USERS,
        "90 seconds"
      )
      assert.sameMembers(all, users("f", USERS), "every record once")
      const after = yield* eventually(status, (s) => s.deadLetters === 0 && s.backlog === 0 && !s.deadLettersRefused, "30 seconds")
      assert.strictEqual(after.deadLetters, 0)
    }).pipe(Effect.scoped, Effect.provide(layerTestNatsServer())), { timeout: 180_000 })
})
