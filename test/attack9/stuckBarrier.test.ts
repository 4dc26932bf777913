/**
 * Attack (issue 9, the lane barrier): a destination whose DELIVER never drains (its partner down, its
 * circuit open) has its `lanes` changed, then is deleted. Another destination of the same segment must
 * go on receiving, refreshes too (that holds). Deleting a destination "deletes the chunks still waiting on
 * DELIVER" (README): its split waiting in the package outbox must not land there afterwards, nor the
 * barrier stay up for a destination that no longer exists.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { StreamNames } from "../../domain/subjects.ts"
import { Nats, tryNats } from "../../infra/nats/Nats.ts"
import { eventually } from "../fixtures/http.ts"
import { layerTestNats } from "../fixtures/nats.ts"
import { receivedRequests } from "../fixtures/partnerSimulator.ts"
import { call } from "../fixtures/platformProcess.ts"
import { ADMIN, startAttackPlatform, users } from "./platform.ts"

describe("attack: a lane barrier that never opens", () => {
  it.live("a destination deleted while its new split waits at the lane barrier leaves no chunks on DELIVER, no outbox rows and no barrier", () =>
    Effect.gen(function*() {
      const { platform, simulator, api, ingest } = yield* startAttackPlatform("attack9-stuck-barrier", { simulated: { stuck: { down: true } } })
      const { manager } = yield* Nats
      yield* ingest("701", users("s", 20).map((u) => [u, "add"] as const), 20)
      for (const id of ["stuck", "ok"]) {
        const created = yield* api("PUT", `/v1/entities/destination/${id}`, {
          partnerId: "acme", url: `${simulator}/d/${id}`, format: "single", ratePerSecond: 100, maxAttempts: 100, segmentIds: ["701"]
        })
        assert.strictEqual(created.status, 201, created.text)
      }
      const okUsers = receivedRequests(simulator, "ok").pipe(Effect.map((rs) => rs.flatMap((r) => r.records)))
      yield* eventually(okUsers, (rs) => rs.length === 20, "60 seconds")
      const barriers = call(platform().base, "GET", "/metrics", { key: ADMIN }).pipe(Effect.map((answer) =>
        Number(/^tributary_delivery_lane_barriers(?:\{[^}]*\})? (\S+)$/m.exec(answer.text)?.[1] ?? NaN)))

      // the stuck one's lanes raised while its 20 adds wait: the new split waits for ever
      assert.strictEqual((yield* api("PATCH", "/v1/entities/destination/stuck", { lanes: 3 })).status, 200)
      yield* ingest("701", users("t", 10).map((u) => [u, "add"] as const), 30)
      yield* eventually(barriers, (n) => n === 1, "30 seconds")
      yield* eventually(okUsers, (rs) => rs.length === 30, "30 seconds")
      // refreshes of both are taken
      assert.strictEqual((yield* api("POST", "/v1/destinations/ok/refresh")).status, 202)
      assert.strictEqual((yield* api("POST", "/v1/destinations/stuck/refresh")).status, 202)
      yield* eventually(okUsers, (rs) => rs.length === 60, "30 seconds")
      // lanes changed back and forth while it waits
      for (const lanes of [16, 1, 7, 2]) assert.strictEqual((yield* api("PATCH", "/v1/entities/destination/stuck", { lanes })).status, 200)
      yield* ingest("701", users("v", 5).map((u) => [u, "add"] as const), 35)
      yield* eventually(okUsers, (rs) => rs.length === 65, "30 seconds")

      // Deleted while its new split waits: the deletion purges DELIVER, which opens the barrier; the
      // publisher then puts the first waiting split on DELIVER, where no deliverer takes it (the
      // destination is gone), and the next split waits behind it for ever.
      assert.strictEqual((yield* api("DELETE", "/v1/entities/destination/stuck")).status, 200)
      const onDeliver = tryNats("DELIVER info", () => manager.streams.info(StreamNames.deliver, { subjects_filter: "deliver.stuck.>" })).pipe(
        Effect.map((info) => Object.values(info.state.subjects ?? {}).reduce((a, b) => a + b, 0)))
      const outbox = call(platform().base, "GET", "/metrics", { key: ADMIN }).pipe(Effect.map((answer) =>
        Number(/^tributary_delivery_outbox_records(?:\{[^}]*\})? (\S+)$/m.exec(answer.text)?.[1] ?? NaN)))
      const left = Effect.all({ barriers, onDeliver, outbox })
      yield* eventually(left, (l) => l.barriers === 0 && l.onDeliver === 0 && l.outbox === 0, "40 seconds")
    }).pipe(Effect.scoped, Effect.provide(layerTestNats())), { timeout: 150_000 })
})
