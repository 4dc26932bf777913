import { assert, describe, it } from "@effect/vitest"
import { DatabaseSync } from "node:sqlite"
import { Effect, Layer } from "effect"
import { TestClock } from "effect/testing"
import type { CleanEvent, SessionEnded } from "../../../domain/events/CleanEvent.ts"
import { layerSqlite as rollupStore, RollupStore } from "../../../infra/readmodel/rollups.ts"
import { layerSqlite as rollupQueries } from "../../../infra/readmodel/rollupsQueries.ts"
import { minuteOf, type RollupTiers, tierFloors } from "../../../projections/events/rollupBuckets.ts"
import { type Granularity, type Measure, RollupReadModel } from "../../../projections/events/rollups.ts"
import { cleanEvent, sessionEnded } from "../../fixtures/appEvents.ts"
import { tempDir } from "../../fixtures/tempDir.ts"

// Rows are kept per minute for ROLLUP_MINUTE_DAYS, per hour for ROLLUP_HOUR_DAYS, then per day: a late
// event goes straight to the width its age allows, rows that age past a horizon are rolled up, and a
// query finer than what its range still has is refused rather than answered with wrong buckets.
// Before, every row was kept per minute for good (stop 26's outside attack: 1.43 GB in 80 s).

const tiers: RollupTiers = { minuteDays: 1, hourDays: 3 }
/** The rollups' writer and reader on `path`, with the writer's horizons and compaction steps and the reader's horizons. */
const rollupsWith = (path: string, writer: RollupTiers, reader = writer, steps?: { readonly setsPerStep: number; readonly rowsPerStep: number }) =>
  Layer.mergeAll(rollupStore({ path, tiers: writer, steps }), rollupQueries({ path, tiers: reader }))
const rollups = (path: string) => rollupsWith(path, tiers)
/** Horizons longer than `tiers`. */
const longer: RollupTiers = { minuteDays: 7, hourDays: 30 }

const query = (measure: Measure, granularity: Granularity, from: string, to: string, more: { readonly name?: string; readonly sum?: string } = {}) =>
  Effect.flatMap(RollupReadModel, (model) =>
    model.query({ app: "1", measure, granularity, fromMinute: minuteOf(from), toMinute: minuteOf(to), groupBy: [], filters: new Map(), ...more }, "test"))

const rows = (measure: Measure, granularity: Granularity, from: string, to: string, more: { readonly name?: string; readonly sum?: string } = {}) =>
  Effect.map(query(measure, granularity, from, to, more), (rows) => rows.map((r) => [r.time, r.value]))

const refusal = (granularity: Granularity, from: string, to: string) =>
  Effect.map(Effect.flip(query("events", granularity, from, to)), (e) => e._tag === "MetricsNotKept" ? e.field : e._tag)

let seq = 0
const apply = (kind: "events" | "sessions", bodies: ReadonlyArray<CleanEvent | SessionEnded>) =>
  Effect.gen(function*() {
    const store = yield* RollupStore
    const stream = kind === "events" ? "TIERS_EVENTS" : "TIERS_SESSIONS"
    const messages = kind === "events"
      ? [{ seq: ++seq, storedAtMillis: 0, body: JSON.stringify({ app: "1", events: bodies }) }]
      : bodies.map((body) => ({ seq: ++seq, storedAtMillis: 0, body: JSON.stringify(body) }))
    const seqs = messages.map((m) => m.seq)
    return yield* store.apply(kind, stream, messages, { batchSeqs: seqs, lastSeq: Math.max(...seqs), goneBelow: seqs[0]! })
  })

const event = (device: string, time: string, more: Partial<CleanEvent> = {}) => cleanEvent("1", device, seq, time, more)

/** Rows of the file below the horizons that are not at the start of their hour or day: none once compacted. */
const unrolled = (path: string, nowMillis: number) => {
  const floors = tierFloors(tiers, nowMillis)
  const db = new DatabaseSync(path, { readOnly: true })
  try {
    return ["rollup_events", "rollup_devices", "rollup_sessions", "custom_events", "custom_totals"].map((table) =>
      (db.prepare(`SELECT COUNT(*) AS n FROM ${table} WHERE (minute < ? AND minute % 60 <> 0) OR (minute < ? AND minute % 1440 <> 0)`)
        .get(floors.minutes, floors.hours) as { n: number }).n)
  } finally {
    db.close()
  }
}

describe("rollups kept per minute, then per hour, then per day", () => {
  it.effect("a writer with shorter horizons than a reader (two configs at once): the reader does not ask minutes of what it counted in hours", () =>
    Effect.gen(function*() {
      const path = `${yield* tempDir("rollup-tiers")}/rollups.db`
      yield* TestClock.setTime(Date.parse("2026-06-10T12:00:00Z"))
      yield* Effect.provide(Effect.gen(function*() {
        yield* apply("events", [event("d1", "2026-06-07T10:05:00Z"), event("d1", "2026-06-07T10:50:00Z")])
        assert.strictEqual(yield* refusal("minute", "2026-06-07T10:00:00Z", "2026-06-07T11:00:00Z"), "granularity")
        assert.deepStrictEqual(yield* rows("events", "hour", "2026-06-07T10:00:00Z", "2026-06-07T11:00:00Z"), [["2026-06-07T10:00:00.000Z", 2]])
      }), rollupsWith(path, tiers, longer))
    }))

  it.effect("a compaction stopped partway, then a horizon raised: what it may have rolled is asked per hour, not per minute", () =>
    Effect.gen(function*() {
      // the re-attack of stop 27: the mark moved only once every set was done, so a compaction stopped
      // halfway left hour rows below a mark that still said minutes; raised again, the horizon let minute
      // queries through over them, each hour answered as its first minute
      const path = `${yield* tempDir("rollup-tiers")}/rollups.db`
      yield* TestClock.setTime(Date.parse("2026-06-05T23:00:00Z"))
      yield* Effect.provide(Effect.gen(function*() {
        // 20 dimension sets, each an event in three minutes of 06-03 10:00
        for (let set = 0; set < 20; set++) {
          yield* apply("events", [1, 2, 3].map((m) => event(`d${set}`, `2026-06-03T10:0${m}:00Z`, { dims: { platform: `p${set}` } })))
        }
        assert.deepStrictEqual(yield* rows("events", "minute", "2026-06-03T10:00:00Z", "2026-06-03T11:00:00Z"), [
          ["2026-06-03T10:01:00.000Z", 20], ["2026-06-03T10:02:00.000Z", 20], ["2026-06-03T10:03:00.000Z", 20]
        ])
      }), rollupsWith(path, longer))
      // a day later with minutes kept 1 day: 06-03 is past it; the compaction stops after a few sets
      yield* TestClock.setTime(Date.parse("2026-06-06T12:00:00Z"))
      const steps = { setsPerStep: 5, rowsPerStep: 1_000 }
      yield* Effect.provide(Effect.gen(function*() {
        const partway = yield* Effect.flatMap(RollupStore, (s) => s.compact({ maxSteps: 2 }))
        // 10 of the 20 sets: their events and presence rows, 6 each
        assert.deepStrictEqual([partway.steps, partway.moved], [2, 10 * 6])
      }), rollupsWith(path, { minuteDays: 1, hourDays: 30 }, undefined, steps))
      // started again with minutes kept 7 days: minutes of 06-03 are not asked for; hours and their sums are right
      yield* Effect.provide(Effect.gen(function*() {
        assert.strictEqual(yield* refusal("minute", "2026-06-03T10:00:00Z", "2026-06-03T11:00:00Z"), "granularity")
        assert.deepStrictEqual(yield* rows("events", "hour", "2026-06-03T10:00:00Z", "2026-06-03T11:00:00Z"), [["2026-06-03T10:00:00.000Z", 60]])
        assert.deepStrictEqual(yield* rows("devices", "hour", "2026-06-03T10:00:00Z", "2026-06-03T11:00:00Z"), [["2026-06-03T10:00:00.000Z", 20]])
        // a late event there goes to its hour too; minutes after the range stay minutes
        yield* apply("events", [event("d99", "2026-06-03T10:30:00Z"), event("d99", "2026-06-05T10:30:00Z")])
        assert.deepStrictEqual(yield* rows("events", "hour", "2026-06-03T10:00:00Z", "2026-06-03T11:00:00Z"), [["2026-06-03T10:00:00.000Z", 61]])
        assert.deepStrictEqual(yield* rows("events", "minute", "2026-06-05T10:00:00Z", "2026-06-05T11:00:00Z"), [["2026-06-05T10:30:00.000Z", 1]])
      }), rollupsWith(path, longer, longer, steps))
    }))

  it.effect("roll a dimension set of many rows up a few hours a step, not all at once, with the same counts", () =>
    Effect.gen(function*() {
      // stop 27's outside attack: one set of 2,160,000 events, rolled up in one step of 500 sets, held
      // the writer (every app's batches) 2.6 s
      const path = `${yield* tempDir("rollup-tiers")}/rollups.db`
      const now = Date.parse("2026-06-10T12:00:00Z")
      const days = ["2026-06-04", "2026-06-05"]
      // 10 devices a minute for two days, written per minute while they were recent
      yield* TestClock.setTime(Date.parse("2026-06-05T23:59:00Z"))
      const steps = { setsPerStep: 500, rowsPerStep: 100 }
      yield* Effect.provide(Effect.gen(function*() {
        for (const day of days) {
          for (let hour = 0; hour < 24; hour++) {
            yield* apply("events", Array.from({ length: 600 }, (_, i) =>
              event(`d${i % 10}`, new Date(Date.parse(`${day}T00:00:00Z`) + hour * 3_600_000 + Math.floor(i / 10) * 60_000).toISOString())))
          }
        }
      }), rollupsWith(path, tiers, tiers, steps))
      yield* TestClock.setTime(now)
      yield* Effect.provide(Effect.gen(function*() {
        const done = yield* Effect.flatMap(RollupStore, (s) => s.compact())
        // 31,680 minute rows of events and presence (but each day's first minute's: at its day already),
        // counted before they move: more than a step's 100 in one set, so an hour (660 rows) a step
        assert.strictEqual(done.moved, 2 * 24 * 60 * 11 - 2 * 11)
        assert.strictEqual(done.steps, 48)
        assert.strictEqual(done.largestStep, 60 * 11)
        assert.deepStrictEqual(unrolled(path, now), [0, 0, 0, 0, 0])
        assert.deepStrictEqual(yield* rows("events", "day", "2026-06-04T00:00:00Z", "2026-06-06T00:00:00Z"), [
          ["2026-06-04T00:00:00.000Z", 14_400], ["2026-06-05T00:00:00.000Z", 14_400]
        ])
        assert.deepStrictEqual(yield* rows("devices", "day", "2026-06-04T00:00:00Z", "2026-06-06T00:00:00Z"), [
          ["2026-06-04T00:00:00.000Z", 10], ["2026-06-05T00:00:00.000Z", 10]
        ])
      }), rollupsWith(path, tiers, tiers, steps))
    }))

  it.effect("write each bucket at the width its age allows, refuse finer queries, and roll aged rows into hours and days with the same counts", () =>
    Effect.gen(function*() {
      const path = `${yield* tempDir("rollup-tiers")}/rollups.db`
      // today 2026-06-10: minutes from 06-09, hours from 06-07, days before
      const now = Date.parse("2026-06-10T12:00:00Z")
      yield* TestClock.setTime(now)
      yield* Effect.provide(Effect.gen(function*() {
        yield* apply("events", [
          event("d1", "2026-06-10T11:05:10Z"), event("d2", "2026-06-10T11:05:50Z"), event("d1", "2026-06-10T11:47:00Z"),
          event("d1", "2026-06-08T13:17:00Z"), event("d1", "2026-06-08T13:45:00Z"), event("d2", "2026-06-08T13:50:00Z"),
          event("d1", "2026-06-08T13:51:00Z", { type: "custom", name: "buy", props: { amount: 2.5 } }),
          event("d3", "2026-06-05T09:00:00Z"), event("d3", "2026-06-05T22:10:00Z")
        ])
        yield* apply("sessions", [sessionEnded("1", "d1", "2026-06-08T13:17:00Z", 20), sessionEnded("1", "d2", "2026-06-10T11:05:50Z", 40)])
        // written at their widths already: nothing for the compaction there
        assert.deepStrictEqual(unrolled(path, now), [0, 0, 0, 0, 0])

        assert.deepStrictEqual(yield* rows("events", "minute", "2026-06-10T11:00:00Z", "2026-06-10T12:00:00Z"), [
          ["2026-06-10T11:05:00.000Z", 2], ["2026-06-10T11:47:00.000Z", 1]
        ])
        // three days back: one row for the hour; its devices exact
        assert.deepStrictEqual(yield* rows("events", "hour", "2026-06-08T00:00:00Z", "2026-06-09T00:00:00Z"), [["2026-06-08T13:00:00.000Z", 4]])
        assert.deepStrictEqual(yield* rows("devices", "hour", "2026-06-08T00:00:00Z", "2026-06-09T00:00:00Z"), [["2026-06-08T13:00:00.000Z", 2]])
        assert.deepStrictEqual(yield* rows("custom", "hour", "2026-06-08T00:00:00Z", "2026-06-09T00:00:00Z", { name: "buy", sum: "amount" }), [["2026-06-08T13:00:00.000Z", 2.5]])
        assert.deepStrictEqual(yield* rows("sessions", "hour", "2026-06-08T00:00:00Z", "2026-06-09T00:00:00Z"), [["2026-06-08T13:00:00.000Z", 1]])
        // five days back: one row for the day
        assert.deepStrictEqual(yield* rows("events", "day", "2026-06-05T00:00:00Z", "2026-06-06T00:00:00Z"), [["2026-06-05T00:00:00.000Z", 2]])
        // finer than kept, or an end inside an hour or a day kept whole: refused, naming what to change
        assert.strictEqual(yield* refusal("minute", "2026-06-08T13:00:00Z", "2026-06-08T14:00:00Z"), "granularity")
        assert.strictEqual(yield* refusal("hour", "2026-06-05T00:00:00Z", "2026-06-06T00:00:00Z"), "granularity")
        assert.strictEqual(yield* refusal("hour", "2026-06-08T13:30:00Z", "2026-06-08T15:00:00Z"), "from")
        assert.strictEqual(yield* refusal("hour", "2026-06-08T00:00:00Z", "2026-06-08T13:30:00Z"), "to")
        assert.strictEqual(yield* refusal("day", "2026-06-05T10:00:00Z", "2026-06-06T00:00:00Z"), "from")
        // a range across the horizons, on its widths' bounds, is answered
        assert.deepStrictEqual((yield* rows("events", "day", "2026-06-05T00:00:00Z", "2026-06-11T00:00:00Z")).map(([, n]) => n), [2, 4, 3])
        assert.strictEqual((yield* Effect.flatMap(RollupStore, (s) => s.compact())).moved, 0)
      }), rollups(path))

      // three days later: 06-10 is kept per hour, 06-08 per day
      const later = now + 3 * 86_400_000
      yield* TestClock.setTime(later)
      yield* Effect.provide(Effect.gen(function*() {
        assert.isAbove((yield* Effect.flatMap(RollupStore, (s) => s.compact())).moved, 0)
        assert.deepStrictEqual(unrolled(path, later), [0, 0, 0, 0, 0])
        assert.deepStrictEqual(yield* rows("events", "hour", "2026-06-10T00:00:00Z", "2026-06-11T00:00:00Z"), [["2026-06-10T11:00:00.000Z", 3]])
        assert.deepStrictEqual(yield* rows("devices", "hour", "2026-06-10T00:00:00Z", "2026-06-11T00:00:00Z"), [["2026-06-10T11:00:00.000Z", 2]])
        assert.deepStrictEqual(yield* rows("sessions", "hour", "2026-06-10T00:00:00Z", "2026-06-11T00:00:00Z"), [["2026-06-10T11:00:00.000Z", 1]])
        assert.deepStrictEqual(yield* rows("events", "day", "2026-06-05T00:00:00Z", "2026-06-11T00:00:00Z"), [
          ["2026-06-05T00:00:00.000Z", 2], ["2026-06-08T00:00:00.000Z", 4], ["2026-06-10T00:00:00.000Z", 3]
        ])
        assert.deepStrictEqual(yield* rows("devices", "day", "2026-06-08T00:00:00Z", "2026-06-09T00:00:00Z"), [["2026-06-08T00:00:00.000Z", 2]])
        assert.deepStrictEqual(yield* rows("custom", "day", "2026-06-08T00:00:00Z", "2026-06-09T00:00:00Z", { name: "buy", sum: "amount" }), [["2026-06-08T00:00:00.000Z", 2.5]])
        assert.strictEqual(yield* refusal("minute", "2026-06-10T11:00:00Z", "2026-06-10T12:00:00Z"), "granularity")
        // a late event after the roll-up counts in the same row; nothing is left to roll up, after a restart too
        yield* apply("events", [event("d4", "2026-06-10T11:30:00Z")])
        assert.deepStrictEqual(yield* rows("events", "hour", "2026-06-10T11:00:00Z", "2026-06-10T12:00:00Z"), [["2026-06-10T11:00:00.000Z", 4]])
        assert.deepStrictEqual(unrolled(path, later), [0, 0, 0, 0, 0])
        assert.strictEqual((yield* Effect.flatMap(RollupStore, (s) => s.compact())).moved, 0)
      }), rollups(path))
      yield* Effect.provide(Effect.flatMap(RollupStore, (s) => Effect.map(s.compact(), ({ moved }) => assert.strictEqual(moved, 0))), rollups(path))

      // Horizons raised since: what was rolled up stays so, for queries and for late events (stop 27's
      // outside attack: a minute query over rows rolled into a day answered the whole day as its first minute)
      const raised: RollupTiers = { minuteDays: 30, hourDays: 60 }
      yield* Effect.provide(Effect.gen(function*() {
        assert.strictEqual(yield* refusal("minute", "2026-06-10T11:00:00Z", "2026-06-10T12:00:00Z"), "granularity")
        assert.strictEqual(yield* refusal("hour", "2026-06-08T00:00:00Z", "2026-06-09T00:00:00Z"), "granularity")
        yield* apply("events", [event("d5", "2026-06-10T11:40:00Z"), event("d5", "2026-06-08T20:00:00Z")])
        assert.deepStrictEqual(unrolled(path, later), [0, 0, 0, 0, 0])
        assert.deepStrictEqual(yield* rows("events", "day", "2026-06-08T00:00:00Z", "2026-06-11T00:00:00Z"), [
          ["2026-06-08T00:00:00.000Z", 5], ["2026-06-10T00:00:00.000Z", 5]
        ])
        // minutes written since are kept as minutes
        yield* apply("events", [event("d5", "2026-06-13T09:00:00Z")])
        assert.deepStrictEqual(yield* rows("events", "minute", "2026-06-13T09:00:00Z", "2026-06-13T10:00:00Z"), [["2026-06-13T09:00:00.000Z", 1]])
      }), rollupsWith(path, raised))
    }))
})
