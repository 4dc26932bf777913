import { assert, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { StreamNames } from "../../../domain/subjects.ts"
import { evaluateTrends, keepAlertsMinutes, publishAlerts } from "../../../infra/events/trendAlerts.ts"
import { layerSqlite as rollupStore, type RollupMessage, RollupStore } from "../../../infra/readmodel/rollups.ts"
import { keepMinutes } from "../../../projections/events/rollupBuckets.ts"
import { layerSqlite as rollupQueries } from "../../../infra/readmodel/rollupsQueries.ts"
import { RollupReadModel } from "../../../projections/events/rollups.ts"
import { cleanEvent } from "../../fixtures/appEvents.ts"
import { streamMessages } from "../../fixtures/jetstreamContents.ts"
import { layerTestNats } from "../../fixtures/nats.ts"
import { tempDir } from "../../fixtures/tempDir.ts"

const rollups = Layer.unwrap(Effect.map(tempDir("trends"), (dir) =>
  Layer.mergeAll(rollupStore({ path: `${dir}/rollups.db`, tiers: keepMinutes }), rollupQueries({ path: `${dir}/rollups.db`, tiers: keepMinutes }))))

const T0 = Date.parse("2026-11-28T10:00:00.000Z")
const minute = (m: number) => T0 + m * 60_000

/** `perMinute[m]` events received in minute m, each stored on EVENTS_CLEAN `latency[m]` ms later. */
const series = (app: string, perMinute: ReadonlyArray<number>, latency: ReadonlyArray<number>): Array<RollupMessage> => {
  let seq = 0
  return perMinute.flatMap((count, m) =>
    Array.from({ length: count }, (_, i) => {
      const received = minute(m) + i * 100
      seq++
      return { seq, storedAtMillis: received + latency[m]!, body: JSON.stringify(cleanEvent(app, `d${i}`, seq, new Date(received).toISOString(), { receivedAt: new Date(received).toISOString() })) }
    }))
}

layer(Layer.provideMerge(rollups, layerTestNats()), { excludeTestServices: true, timeout: 60_000 })("trend alerts", (it) => {
  it.effect("raise an alert when events fall by more than half and when intake latency goes from 200 to 800 ms; published on alerts.<app> once", () =>
    Effect.gen(function*() {
      const app = "7"
      const quiet = "8"
      const perMinute = [...Array(30).fill(40), 10, 10]
      const latency = [...Array(30).fill(200), 800, 800]
      const store = yield* RollupStore
      const items = [...series(app, perMinute, latency), ...series(quiet, Array(32).fill(40), Array(32).fill(200))]
        .map((item, i) => ({ ...item, seq: i + 1 }))
      yield* store.apply("events", StreamNames.eventsClean, items, { batchSeqs: items.map((item) => item.seq), lastSeq: items.length })

      // minute 31 is not complete until a minute after it ended: nothing yet
      assert.strictEqual(yield* evaluateTrends(minute(32) + 30_000), 0)
      assert.strictEqual(yield* evaluateTrends(minute(33) + 1_000), 2)
      // a second pass over the same minutes raises nothing again
      assert.strictEqual(yield* evaluateTrends(minute(33) + 5_000), 0)
      yield* publishAlerts
      yield* publishAlerts

      const page = yield* (yield* RollupReadModel).alerts({ limit: 10 })
      const raised = page.items.map(({ id: _, ...alert }) => ({ ...alert, expected: Math.round(alert.expected) }))
      assert.deepStrictEqual(raised, [
        { app, measure: "events", at: new Date(minute(31)).toISOString(), expected: 40, actual: 10, direction: "down" },
        { app, measure: "intakeLatencyP50", at: new Date(minute(31)).toISOString(), expected: raised[1]!.expected, actual: raised[1]!.actual, direction: "up" }
      ])
      // latency kept in 5% buckets: within 2.5% of the exact values
      assert.isTrue(Math.abs(raised[1]!.expected - 200) <= 5 && Math.abs(raised[1]!.actual - 800) <= 20, JSON.stringify(raised[1]))
      const published = yield* streamMessages(StreamNames.alerts)
      assert.deepStrictEqual(published.map((m) => [m.subject, (m.body as { measure: string }).measure]), [["alerts.7", "events"], ["alerts.7", "intakeLatencyP50"]])
      assert.deepStrictEqual((yield* (yield* RollupReadModel).alerts({ limit: 10, app: quiet })).items, [])

      // 92 days on, published alerts are no longer listed (before stop 27 they were kept for good)
      const raisedThen = Effect.map((yield* RollupReadModel).alerts({ limit: 100, app }), (page) => page.items.filter((a) => a.at === new Date(minute(31)).toISOString()).length)
      yield* evaluateTrends(minute(31) + keepAlertsMinutes * 60_000)
      assert.strictEqual(yield* raisedThen, 2)
      yield* evaluateTrends(minute(34) + keepAlertsMinutes * 60_000)
      assert.strictEqual(yield* raisedThen, 0)
    }))
})
