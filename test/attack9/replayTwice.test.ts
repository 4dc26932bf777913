/**
 * Attack (issue 9, dead letters): two replays of the same dead letters at once, as a careless operator
 * (or a retrying client) sends them. A replay reads the dead letters, publishes each as a new package
 * with new Idempotency-Keys, then removes it; nothing stops a second replay from reading the same
 * letters before the first removed them, so the partner gets their records twice under different keys
 * and cannot recognise the repeat.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { eventually } from "../fixtures/http.ts"
import { layerTestNatsServer } from "../fixtures/nats.ts"
import { configureDestination, receivedRequests } from "../fixtures/partnerSimulator.ts"
import { startAttackPlatform, users } from "./platform.ts"

const USERS = 40

describe("attack: dead letters replayed twice at once", () => {
  it.live("two concurrent replays of the same dead letters send each record to the partner once", () =>
    Effect.gen(function*() {
      const { simulator, api, ingest } = yield* startAttackPlatform("attack9-replay-twice", { simulated: { rt: { rejectAll4xx: true } } })
      yield* ingest("601", users("r", USERS).map((u) => [u, "add"] as const), USERS)
      const created = yield* api("PUT", "/v1/entities/destination/rt", {
        partnerId: "acme", url: `${simulator}/d/rt`, format: "single", ratePerSecond: 200, maxAttempts: 1, segmentIds: ["601"]
      })
      assert.strictEqual(created.status, 201, created.text)
      // every record refused: one dead letter each
      yield* eventually(api("GET", "/v1/destinations/rt/status"), (a) => (a.body as { deadLetters?: number }).deadLetters === USERS, "60 seconds")
      yield* configureDestination(simulator, "rt", { rejectAll4xx: false })

      const [first, second] = yield* Effect.all([
        api("POST", "/v1/destinations/rt/dead-letters/replay", {}),
        api("POST", "/v1/destinations/rt/dead-letters/replay", {})
      ], { concurrency: 2 })
      assert.strictEqual(first.status, 202, first.text)
      assert.strictEqual(second.status, 202, second.text)
      const drained = api("GET", "/v1/destinations/rt/status").pipe(
        Effect.map((a) => a.body as { backlog: number; deadLetters: number }))
      yield* eventually(drained, (s) => s.backlog === 0 && s.deadLetters === 0, "60 seconds")
      const received = (yield* receivedRequests(simulator, "rt")).flatMap((r) => r.records.map((record) => (record as { userId: string }).userId))
      const counts = new Map<string, number>()
      for (const user of received) counts.set(user, (counts.get(user) ?? 0) + 1)
      const twice = [...counts].filter(([, n]) => n > 1).map(([user]) => user)
      assert.strictEqual(received.length, USERS, `replayed ${(first.body as { replayed: number }).replayed} + ${(second.body as { replayed: number }).replayed}; users sent more than once: ${twice.join(", ")}`)
    }).pipe(Effect.scoped, Effect.provide(layerTestNatsServer())), { timeout: 120_000 })
})
