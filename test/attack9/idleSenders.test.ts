/**
 * Attack (issue 9, what an idle destination costs): `maxInFlight` may be up to 10,000 and `lanes` 16.
 * When each in-flight slot was a long-lived sender fiber, whether or not anything was sent, a
 * destination that sent nothing held 10,000 fibers. Ten such destinations (as a careless operator
 * sets "as many as allowed") cost the delivering process ~140 MB of memory doing nothing: measured
 * 358 MB before the sender fibers, 497 MB after, with the same destinations. Senders are now spawned
 * on demand.
 */
import { assert, describe, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import { Effect } from "effect"
import { eventually } from "../fixtures/http.ts"
import { layerTestNatsServer } from "../fixtures/nats.ts"
import { call } from "../fixtures/platformProcess.ts"
import { ADMIN, startAttackPlatform } from "./platform.ts"

const DESTINATIONS = 10

/** The process's resident memory, bytes. */
const rss = (pid: number) => Effect.sync(() => Number(/^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? NaN) * 1024)

describe("attack: destinations with the largest in-flight limit, idle", () => {
  it.live("ten idle destinations with maxInFlight 10,000 cost the delivering process at most 64 MB (no sender while nothing is sent)", () =>
    Effect.gen(function*() {
      const { platform, simulator, api } = yield* startAttackPlatform("attack9-idle-senders")
      const running = call(platform().base, "GET", "/metrics", { key: ADMIN }).pipe(Effect.map((answer) =>
        Number(/^tributary_deliverers_running(?:\{[^}]*\})? (\S+)$/m.exec(answer.text)?.[1] ?? 0)))
      // one small destination first, so that what delivery itself loads is counted before
      const small = yield* api("PUT", "/v1/entities/destination/small", {
        partnerId: "acme", url: `${simulator}/d/small`, format: "single", ratePerSecond: 10, segmentIds: ["999"]
      })
      assert.strictEqual(small.status, 201, small.text)
      yield* eventually(running, (n) => n === 1, "60 seconds")
      const before = yield* rss(platform().pid)
      for (let i = 0; i < DESTINATIONS; i++) {
        const created = yield* api("PUT", `/v1/entities/destination/wide${i}`, {
          partnerId: "acme", url: `${simulator}/d/wide`, format: "single", ratePerSecond: 100, maxInFlight: 10_000, lanes: 16, segmentIds: ["999"]
        })
        assert.strictEqual(created.status, 201, created.text)
      }
      yield* eventually(running, (n) => n === 1 + 16 * DESTINATIONS, "60 seconds")
      const grown = (yield* rss(platform().pid)) - before
      assert.isAtMost(grown, 64 * 1024 * 1024, `${DESTINATIONS} idle destinations (160 lanes) took ${Math.round(grown / 1024 / 1024)} MB`)
    }).pipe(Effect.scoped, Effect.provide(layerTestNatsServer())), { timeout: 120_000 })
})
