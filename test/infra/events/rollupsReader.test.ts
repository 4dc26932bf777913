/**
 * Metrics queries run on the rollups' reader thread, not on the event loop: an outside attack made a
 * query over an app of many distinct dimension values hold the event loop 300 ms (80 at once: 20 s, and
 * every lease of the process lapsed). A real rollups file with 200,000 dimension sets, a query grouping
 * them all; a timer set after the query starts fires before the query's answer comes.
 */
import { assert, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Result } from "effect"
import { layerSqlite as rollupQueries, maxWaiting, maxWaitingPerCaller } from "../../../infra/readmodel/rollupsQueries.ts"
import { openRollupsFile } from "../../../infra/readmodel/rollupsFile.ts"
import { type MetricsQuery, RollupReadModel } from "../../../projections/events/rollups.ts"
import { keepMinutes } from "../../../projections/events/rollupBuckets.ts"
import { tempDir } from "../../fixtures/tempDir.ts"

// 2025-02-19, its rows per minute (keepMinutes)
const minute = 29_000_000

const fill = (path: string) => {
  const db = openRollupsFile(path)
  db.exec(`
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000)
    INSERT INTO dim_sets (id, key, app, platform, country, model, carrier)
      SELECT i, 'k' || i, '9', 'p' || (i % 7), 'c' || (i % 50), 'm' || i, 'carrier-' || i FROM n;
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000)
    INSERT INTO rollup_events (dim_set, minute, events) SELECT i, ${minute} + (i % 60), 1 FROM n;`)
  db.close()
}

/** Every dimension of the 200,000 sets, grouped. */
const heavyQuery: MetricsQuery = {
  app: "9", measure: "events", granularity: "day", fromMinute: minute - 1_440, toMinute: minute + 1_440,
  groupBy: ["platform", "country", "model", "carrier"], filters: new Map(), maxRows: 10_000
}

/** `f` with the reader of a filled rollups file (at `path`). */
const withReader = <A, E>(f: (model: RollupReadModel["Service"], path: string) => Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const path = `${yield* tempDir("rollups-reader")}/rollups.db`
    fill(path)
    return yield* Effect.flatMap(RollupReadModel, (model) => f(model, path)).pipe(Effect.provide(Layer.fresh(rollupQueries({ path, tiers: keepMinutes }))))
  }).pipe(Effect.scoped)

it.live("a heavy metrics query leaves the event loop free", () =>
  withReader((model) =>
    Effect.gen(function*() {
      const order: Array<string> = []
      const heavy = model.query(heavyQuery, "k").pipe(Effect.tap((rows) => Effect.sync(() => order.push(`query ${rows.length}`))))
      const timer = Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 10))).pipe(Effect.tap(() => Effect.sync(() => order.push("timer"))))
      yield* Effect.all([heavy, timer], { concurrency: 2 })
      assert.deepStrictEqual(order, ["timer", "query 10001"])
    })), { timeout: 60_000 })

it.live("queries wait their turn for the reader here, at most maxWaiting of them: more are busy, and one whose client went away leaves its place", () =>
  withReader((model) =>
    Effect.gen(function*() {
      const heavy = (caller: string) => model.query(heavyQuery, caller)
      const light = model.query({ app: "9", measure: "events", granularity: "day", fromMinute: minute - 1_440, toMinute: minute + 1_440, groupBy: [], filters: new Map(), maxRows: 10 }, "light")
      // one in the reader, maxWaiting + 4 more asked at once (each by a key of its own): the last 4 are busy, without waiting
      const first = yield* Effect.forkChild(heavy("first"))
      yield* Effect.yieldNow
      const answers = yield* Effect.all(Array.from({ length: maxWaiting + 4 }, (_, i) => Effect.result(heavy(`k${i}`).pipe(Effect.timeout("1 millis")))), { concurrency: "unbounded" })
      const busy = answers.filter((a) => Result.isFailure(a) && a.failure._tag === "MetricsBusy").length
      assert.strictEqual(busy, 4)
      // the others gave up waiting (their clients went away): their places are free, and the light query is answered
      assert.deepStrictEqual((yield* light).map((row) => row.value), [200_000])
      assert.strictEqual((yield* Fiber.join(first)).length, 10_001)
    })), { timeout: 60_000 })

it.live("turns go round the keys: one key's queries waiting ahead do not hold another key's up, and one key waits with at most maxWaitingPerCaller", () =>
  withReader((model) =>
    Effect.gen(function*() {
      // Before (stop 26's outside attack), in arrival order: one key's 30 heavy queries made another
      // tenant's light query wait 7–20 s, or be refused.
      const done: Array<string> = []
      const ask = (caller: string, name: string, query: MetricsQuery) => model.query(query, caller).pipe(Effect.tap(() => Effect.sync(() => done.push(name))))
      const running = yield* Effect.forkChild(ask("flood", "flood-0", heavyQuery))
      yield* Effect.yieldNow
      const queued = yield* Effect.forEach(Array.from({ length: maxWaitingPerCaller }, (_, i) => i + 1), (i) => Effect.forkChild(ask("flood", `flood-${i}`, heavyQuery)))
      yield* Effect.yieldNow
      const over = yield* Effect.result(ask("flood", "flood-over", heavyQuery))
      assert.isTrue(Result.isFailure(over) && over.failure._tag === "MetricsBusy", "past its share, the key is busy at once")
      const light = { app: "9", measure: "events", granularity: "day", fromMinute: minute - 1_440, toMinute: minute + 1_440, groupBy: [], filters: new Map(), maxRows: 10 } as const
      assert.deepStrictEqual((yield* ask("other", "other", light)).map((row) => row.value), [200_000])
      // answered next after the query in the reader, ahead of the flooding key's waiting ones
      assert.deepStrictEqual(done, ["flood-0", "other"])
      yield* Fiber.join(running)
      yield* Effect.forEach(queued, Fiber.join)
      assert.deepStrictEqual(done.slice(2), Array.from({ length: maxWaitingPerCaller }, (_, i) => `flood-${i + 1}`))
    })), { timeout: 120_000 })

it.live("a query checks the compaction's marks as it reads its rows, not before it waits its turn", () =>
  Effect.gen(function*() {
    // The third attack of stop 27: checked on the main thread before it waited behind heavy queries, a
    // minute query ran after a compaction had begun there, and answered a day's rows as its first minute.
    const minutes = { app: "9", measure: "events", granularity: "minute", fromMinute: minute, toMinute: minute + 60, groupBy: [], filters: new Map(), maxRows: 100 } as const
    // A round counts when the heavy query was still running once the mark was set (the waiting query then
    // reads after it); on a loaded machine the reader's thread may finish it first, and a round on a fresh
    // file is run again (the reader never lowers a mark it saw).
    const round = withReader((model, path) =>
      Effect.gen(function*() {
        assert.strictEqual((yield* model.query(minutes, "k")).length, 60)
        const running = yield* Effect.forkChild(model.query(heavyQuery, "heavy"))
        yield* Effect.yieldNow
        const waiting = yield* Effect.forkChild(Effect.result(model.query(minutes, "k")))
        yield* Effect.yieldNow
        // meanwhile a compaction begins rolling that day into hours
        const db = openRollupsFile(path)
        db.prepare("INSERT OR REPLACE INTO rollup_tiers VALUES ('minutes', ?)").run(minute + 1_440)
        db.close()
        const heavyDone = running.pollUnsafe() !== undefined
        const answer = yield* Fiber.join(waiting)
        yield* Fiber.join(running)
        if (heavyDone) return false
        const refused = Result.isFailure(answer) ? answer.failure : undefined
        assert.deepStrictEqual([refused?._tag, refused?._tag === "MetricsNotKept" ? refused.field : ""], ["MetricsNotKept", "granularity"], "answered rows read after the compaction began")
        return true
      }))
    let conclusive = false
    for (let i = 0; i < 5 && !conclusive; i++) conclusive = yield* round
    assert.isTrue(conclusive, "the heavy query finished before the mark in every round")
  }), { timeout: 120_000 })
