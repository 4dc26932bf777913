import { assert, describe, it } from "@effect/vitest"
import { DatabaseSync } from "node:sqlite"
import { Effect, Layer } from "effect"
import { TestClock } from "effect/testing"
import type { CleanEvent } from "../../../domain/events/CleanEvent.ts"
import type { Dimension } from "../../../domain/events/dimensions.ts"
import { layerSqlite as rollupStore, RollupStore } from "../../../infra/readmodel/rollups.ts"
import { layerSqlite as rollupQueries } from "../../../infra/readmodel/rollupsQueries.ts"
import { minuteOf, type RollupLimits } from "../../../projections/events/rollupBuckets.ts"
import { type Measure, RollupReadModel } from "../../../projections/events/rollups.ts"
import { cleanEvent } from "../../fixtures/appEvents.ts"
import { tempDir } from "../../fixtures/tempDir.ts"

// What one app's SDK (whose key anyone can unpack) may add to rollups.db: past a limit its events
// still count, under "(other)". Before, custom events with 50 numeric props of 64-character keys wrote
// ~12 KB of rows each (stop 26's outside attack: 1.43 GB in 80 s).

const limits: RollupLimits = { customNames: 2, summedProps: 2, newDimSetsPerDay: 3, newDimSetBytesPerDay: 4_096 }
const day = { fromMinute: minuteOf("2026-11-28T00:00:00Z"), toMinute: minuteOf("2026-11-29T00:00:00Z"), granularity: "day" as const }
const at = "2026-11-28T10:00:00.000Z"

const rollups = (path: string, bounds = limits) => Layer.mergeAll(rollupStore({ path, limits: bounds }), rollupQueries({ path }))

const query = (app: string, measure: Measure, more: { readonly groupBy?: ReadonlyArray<Dimension>; readonly name?: string; readonly sum?: string } = {}) =>
  Effect.flatMap(RollupReadModel, (model) =>
    model.query({
      app,
      measure,
      ...day,
      groupBy: more.groupBy ?? [],
      filters: new Map(),
      ...(more.name === undefined ? {} : { name: more.name }),
      ...(more.sum === undefined ? {} : { sum: more.sum })
    }, "test"))

const values = (rows: ReadonlyArray<Record<string, unknown>>) => rows.map(({ time: _, ...rest }) => rest)

/** Applies clean events as one message of a stream of their own (the rollups' transaction, as a consumer's batch). */
const apply = (stream: string, events: ReadonlyArray<CleanEvent>) =>
  Effect.gen(function*() {
    const store = yield* RollupStore
    const seq = ((yield* store.checkpoint(stream)) ?? 0) + 1
    const body = JSON.stringify({ app: events[0]!.app, events })
    return yield* store.apply("events", stream, [{ seq, storedAtMillis: Date.parse(at), body }], { batchSeqs: [seq], lastSeq: seq })
  })

const custom = (app: string, device: string, seq: number, name: string, props: Record<string, number | string>) =>
  cleanEvent(app, device, seq, at, { type: "custom", name, props })

describe("rollups' limits per app", () => {
  it.effect("count custom events past the app's names as (other), sum only the first props of a name, and keep both after a restart", () =>
    Effect.gen(function*() {
      const path = `${yield* tempDir("rollup-limits")}/rollups.db`
      const events = [
        custom("1", "d", 0, "n1", { a: 1, b: 2, c: 4, label: "x" }),
        custom("1", "d", 1, "n2", { a: 10 }),
        custom("1", "d", 2, "n3", { a: 100 }),
        custom("1", "d", 3, "n4", { a: 1_000 }),
        custom("1", "d", 4, "n1", { a: 1, c: 4, d: 8 }),
        // another app: names of its own
        custom("2", "d", 0, "n3", { a: 5 })
      ]
      yield* Effect.provide(Effect.gen(function*() {
        assert.strictEqual(yield* apply("LIMITS", events.slice(0, 5)), 5)
        assert.strictEqual(yield* apply("LIMITS_2", events.slice(5)), 1)
        const count = (app: string, name: string) => Effect.map(query(app, "custom", { name }), values)
        assert.deepStrictEqual(yield* count("1", "n1"), [{ value: 2 }])
        assert.deepStrictEqual(yield* count("1", "n2"), [{ value: 1 }])
        // past two names: counted, as (other), not by name
        assert.deepStrictEqual(yield* count("1", "n3"), [])
        assert.deepStrictEqual(yield* count("1", "(other)"), [{ value: 2 }])
        assert.deepStrictEqual(yield* count("2", "n3"), [{ value: 1 }])
        // n1's first two numeric props are summed (the string one is not a sum), the later ones not
        const sum = (name: string, prop: string) => Effect.map(query("1", "custom", { name, sum: prop }), values)
        assert.deepStrictEqual(yield* sum("n1", "a"), [{ value: 2 }])
        assert.deepStrictEqual(yield* sum("n1", "b"), [{ value: 2 }])
        assert.deepStrictEqual(yield* sum("n1", "c"), [])
        assert.deepStrictEqual(yield* sum("n1", "d"), [])
        assert.deepStrictEqual(yield* sum("(other)", "a"), [])
        assert.deepStrictEqual(yield* Effect.map(query("1", "events"), values), [{ value: 5 }])
      }), rollups(path))
      // a new writer (a restart) reads the limits' counts from the file
      yield* Effect.provide(Effect.gen(function*() {
        yield* apply("LIMITS", [custom("1", "e", 0, "n5", { a: 1 }), custom("1", "e", 1, "n2", { a: 1, b: 1, z: 1 })])
        assert.deepStrictEqual(values(yield* query("1", "custom", { name: "(other)" })), [{ value: 3 }])
        assert.deepStrictEqual(values(yield* query("1", "custom", { name: "n2" })), [{ value: 2 }])
        assert.deepStrictEqual(values(yield* query("1", "custom", { name: "n2", sum: "b" })), [{ value: 1 }])
        assert.deepStrictEqual(values(yield* query("1", "custom", { name: "n2", sum: "z" })), [])
      }), rollups(path))
    }))

  it.effect("count events of combinations of dimension values past the app's new ones for the day under (other), keeping type, publisher and category", () =>
    Effect.gen(function*() {
      const path = `${yield* tempDir("rollup-limits")}/rollups.db`
      const event = (app: string, i: number, model: string, type: CleanEvent["type"] = "open") =>
        cleanEvent(app, `d${i}`, 0, at, { type, dims: { platform: "ios", model, publisher: "p", category: "games" } })
      yield* Effect.provide(Effect.gen(function*() {
        yield* apply("SETS", [event("1", 0, "m0"), event("1", 1, "m1"), event("1", 2, "m2"), event("1", 3, "m3"), event("1", 4, "m4", "close")])
        // combinations known before the limit keep counting as themselves
        yield* apply("SETS", [event("1", 5, "m0")])
        yield* apply("SETS_2", [event("2", 0, "m3")])
        const byModel = (app: string) => Effect.map(query(app, "events", { groupBy: ["model", "platform", "type", "publisher", "category"] }), values)
        assert.deepStrictEqual(yield* byModel("1"), [
          { model: "(other)", platform: "(other)", type: "close", publisher: "p", category: "games", value: 1 },
          { model: "(other)", platform: "(other)", type: "open", publisher: "p", category: "games", value: 1 },
          { model: "m0", platform: "ios", type: "open", publisher: "p", category: "games", value: 2 },
          { model: "m1", platform: "ios", type: "open", publisher: "p", category: "games", value: 1 },
          { model: "m2", platform: "ios", type: "open", publisher: "p", category: "games", value: 1 }
        ])
        // unique devices stay exact across them
        assert.deepStrictEqual(values(yield* query("1", "devices")), [{ value: 6 }])
        assert.deepStrictEqual(yield* byModel("2"), [{ model: "m3", platform: "ios", type: "open", publisher: "p", category: "games", value: 1 }])
        // the next UTC day (of the server clock) takes new combinations again, m3 too
        yield* TestClock.adjust("1 day")
        yield* apply("SETS", [event("1", 6, "m3"), event("1", 7, "m5")])
        assert.deepStrictEqual((yield* byModel("1")).map((row) => [row.model, row.value]), [["(other)", 1], ["(other)", 1], ["m0", 2], ["m1", 1], ["m2", 1], ["m3", 1], ["m5", 1]])
      }), rollups(path))
    }))

  it.effect("count combinations past the bytes of values an app may add in a day under (other) too", () =>
    Effect.gen(function*() {
      // stop 27's outside attack: seven 128-character values of 3-byte characters, a new combination an
      // event, wrote 10.8 KB a combination; 50,000 a day were 540 MB
      const path = `${yield* tempDir("rollup-limits")}/rollups.db`
      const long = (i: number) => `${i}`.padEnd(128, "語")
      const event = (i: number, model: string) => cleanEvent("1", `d${i}`, 0, at, { dims: { platform: "ios", model } })
      yield* Effect.provide(Effect.gen(function*() {
        // "ios", "open" and a model of ~380 bytes: ten such combinations fit in 4,096 bytes, not eleven;
        // a short one still fits after them
        yield* apply("BYTES", Array.from({ length: 12 }, (_, i) => event(i, long(i))))
        yield* apply("BYTES", [event(12, "short")])
        const rows = values(yield* query("1", "events", { groupBy: ["model"] }))
        assert.strictEqual(rows.length, 12)
        assert.deepStrictEqual(rows.filter((r) => r.model === "(other)" || r.model === "short"), [{ model: "(other)", value: 2 }, { model: "short", value: 1 }])
        assert.strictEqual(rows.reduce((n, r) => n + Number(r.value), 0), 13)
      }), rollups(path, { ...limits, newDimSetsPerDay: 1_000 }))
      // a combination is kept once, found by a 16-byte digest: its values' bytes and little more
      const file = new DatabaseSync(path, { readOnly: true })
      const sizes = file.prepare("SELECT MAX(length(key)) AS key, COUNT(*) AS sets FROM dim_sets").get() as { key: number; sets: number }
      file.close()
      assert.deepStrictEqual({ ...sizes }, { key: 16, sets: 12 })
    }))

  it.effect("move custom rows kept by name (before stop 27) to interned keys, with the same answers", () =>
    Effect.gen(function*() {
      const path = `${yield* tempDir("rollup-limits")}/rollups.db`
      const minute = minuteOf(at)
      const old = new DatabaseSync(path)
      old.exec(`
        CREATE TABLE dim_sets (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, app TEXT NOT NULL, "platform" TEXT, "osVersion" TEXT,
          "appVersion" TEXT, "model" TEXT, "country" TEXT, "carrier" TEXT, "publisher" TEXT, "category" TEXT, "campaignId" TEXT,
          "creativeId" TEXT, "advertiserId" TEXT, "type" TEXT);
        INSERT INTO dim_sets (id, key, app, platform, country, type)
          VALUES (1, '${JSON.stringify(["7", "ios", null, null, null, "us", null, null, null, null, null, null, "custom"])}', '7', 'ios', 'us', 'custom'),
            (2, 'b', '7', 'android', NULL, 'custom'), (3, 'c', '8', 'ios', NULL, 'custom');
        CREATE TABLE devices (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE);
        INSERT INTO devices (id, key) VALUES (1, '7' || char(0) || 'd');
        CREATE TABLE rollup_custom (dim_set INTEGER NOT NULL, minute INTEGER NOT NULL, name TEXT NOT NULL, events INTEGER NOT NULL,
          PRIMARY KEY (dim_set, minute, name)) WITHOUT ROWID;
        CREATE TABLE rollup_custom_sums (dim_set INTEGER NOT NULL, minute INTEGER NOT NULL, name TEXT NOT NULL, prop TEXT NOT NULL,
          total REAL NOT NULL, PRIMARY KEY (dim_set, minute, name, prop)) WITHOUT ROWID;
        INSERT INTO rollup_custom VALUES (1, ${minute}, 'buy', 3), (2, ${minute}, 'buy', 4), (2, ${minute}, 'win', 1), (3, ${minute}, 'buy', 9);
        INSERT INTO rollup_custom_sums VALUES (1, ${minute}, 'buy', 'amount', 1.5), (2, ${minute}, 'buy', 'amount', 2), (3, ${minute}, 'buy', 'amount', 7);`)
      old.close()
      yield* Effect.provide(Effect.gen(function*() {
        assert.deepStrictEqual(values(yield* query("7", "custom", { name: "buy", groupBy: ["platform"] })), [
          { platform: "android", value: 4 },
          { platform: "ios", value: 3 }
        ])
        assert.deepStrictEqual(values(yield* query("7", "custom", { name: "win" })), [{ value: 1 }])
        assert.deepStrictEqual(values(yield* query("7", "custom", { name: "buy", sum: "amount" })), [{ value: 3.5 }])
        assert.deepStrictEqual(values(yield* query("8", "custom", { name: "buy", sum: "amount" })), [{ value: 7 }])
        // and counted on from there, in the same combination and device, found by their digests now
        yield* apply("MOVED", [custom("7", "d", 0, "buy", { amount: 1 })])
        assert.deepStrictEqual(values(yield* query("7", "custom", { name: "buy", sum: "amount" })), [{ value: 4.5 }])
        assert.deepStrictEqual(values(yield* query("7", "custom", { name: "buy", groupBy: ["platform"] })), [
          { platform: "android", value: 4 },
          { platform: "ios", value: 4 }
        ])
      }), rollups(path))
      const file = new DatabaseSync(path)
      const tables = (file.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'rollup_custom%'").all() as Array<{ name: string }>)
      const keys = file.prepare("SELECT (SELECT COUNT(*) FROM dim_sets) AS sets, (SELECT COUNT(*) FROM devices) AS devices, (SELECT COUNT(*) FROM dim_sets WHERE typeof(key) = 'text') + (SELECT COUNT(*) FROM devices WHERE typeof(key) = 'text') AS text").get()
      file.close()
      assert.deepStrictEqual(tables, [])
      assert.deepStrictEqual({ ...keys }, { sets: 3, devices: 1, text: 0 })
    }))
})
