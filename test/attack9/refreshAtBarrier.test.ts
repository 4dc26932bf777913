/**
 * Attack (issue 9, the lane barrier against the refresh bound): `POST …/refresh` answers 503 while the
 * destination has more than DELIVERY_REFRESH_MAX_BACKLOG records waiting, so that refreshes sent
 * faster than the partner takes them do not pile up without bound. It counts what is on DELIVER only.
 * A destination whose `lanes` changed while its partner is down keeps every new refresh in the package
 * outbox (the barrier), where nothing bounds them: each refresh copies the whole segment into
 * delivery.db again.
 */
import { assert, describe, it } from "@effect/vitest"
import { join } from "node:path"
import { DatabaseSync } from "node:sqlite"
import { Effect } from "effect"
import { eventually } from "../fixtures/http.ts"
import { layerTestNatsServer } from "../fixtures/nats.ts"
import { call } from "../fixtures/platformProcess.ts"
import { ADMIN, startAttackPlatform, users } from "./platform.ts"

const MEMBERS = 20
const MAX_BACKLOG = 50

describe("attack: refreshes while a destination waits at its lane barrier", () => {
  it.live("the refresh backlog bound counts the records held in the package outbox: refreshes at a lane barrier stop at the bound", () =>
    Effect.gen(function*() {
      const { platform, simulator, api, ingest, dataDir } = yield* startAttackPlatform("attack9-refresh-barrier", {
        simulated: { down: { down: true } },
        env: { DELIVERY_REFRESH_MAX_BACKLOG: String(MAX_BACKLOG) }
      })
      yield* ingest("911", users("m", MEMBERS).map((u) => [u, "add"] as const), MEMBERS)
      const created = yield* api("PUT", "/v1/entities/destination/down", {
        partnerId: "acme", url: `${simulator}/d/down`, format: "single", ratePerSecond: 50, maxAttempts: 100, segmentIds: ["911"]
      })
      assert.strictEqual(created.status, 201, created.text)
      // its creation refresh waits on DELIVER: the partner is down
      yield* eventually(api("GET", "/v1/destinations/down/status"), (a) => (a.body as { backlog?: number }).backlog === MEMBERS, "60 seconds")
      assert.strictEqual((yield* api("PATCH", "/v1/entities/destination/down", { lanes: 2 })).status, 200)
      const metric = (name: string) => call(platform().base, "GET", "/metrics", { key: ADMIN }).pipe(Effect.map((answer) =>
        Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(answer.text)?.[1] ?? NaN)))
      let accepted = 0
      for (let i = 0; i < 10; i++) {
        const refresh = yield* api("POST", "/v1/destinations/down/refresh")
        if (refresh.status === 202) accepted++
        else assert.strictEqual(refresh.status, 503, refresh.text)
      }
      yield* eventually(metric("tributary_delivery_lane_barriers"), (n) => n === 1, "30 seconds")
      // what each accepted refresh stored (fsynced before its 202) and still waits in the outbox
      const outbox = yield* Effect.acquireUseRelease(
        Effect.sync(() => new DatabaseSync(join(dataDir, "delivery.db"), { readOnly: true })),
        (db) => Effect.sync(() => (db.prepare("SELECT coalesce(sum(records), 0) AS n FROM delivery_outbox WHERE destination = 'down'").get() as { n: number }).n),
        (db) => Effect.sync(() => db.close()))
      const waiting = MEMBERS + outbox
      // the bound lets one refresh past it at most (it is checked before each)
      assert.isAtMost(waiting, MAX_BACKLOG + MEMBERS, `${accepted} of 10 refreshes accepted: ${waiting} records wait (DELIVER and the outbox), the bound is ${MAX_BACKLOG}`)
    }).pipe(Effect.scoped, Effect.provide(layerTestNatsServer())), { timeout: 120_000 })
})
