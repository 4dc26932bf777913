import { assert, layer } from "@effect/vitest"
import { headers } from "@nats-io/transport-node"
import { Effect, Exit, Layer, Metric } from "effect"
import { checkedHeader } from "../../../domain/checked.ts"
import type { Dimension } from "../../../domain/events/dimensions.ts"
import { rollupMessagesLost, runRollupConsumers } from "../../../infra/events/rollupConsumer.ts"
import { layerSqlite as rollupStore, RollupStore } from "../../../infra/readmodel/rollups.ts"
import { layerSqlite as rollupQueries } from "../../../infra/readmodel/rollupsQueries.ts"
import { keepMinutes, minuteOf } from "../../../projections/events/rollupBuckets.ts"
import { type Granularity, type Measure, RollupReadModel } from "../../../projections/events/rollups.ts"
import { cleanEventsSubject, StreamNames } from "../../../domain/subjects.ts"
import { Nats, tryNats } from "../../../infra/nats/Nats.ts"
import { streamMessages } from "../../fixtures/jetstreamContents.ts"
import { cleanEvent, publishClean, publishCleanBatches, publishSessions, sessionEnded } from "../../fixtures/appEvents.ts"
import { eventually } from "../../fixtures/http.ts"
import { layerTestNats } from "../../fixtures/nats.ts"
import { tempDir } from "../../fixtures/tempDir.ts"

const rollups = Layer.unwrap(Effect.map(tempDir("rollups"), (dir) =>
  // about fixed dates, months back: rows kept per minute whatever their age (rollupTiers.test.ts rolls them up)
  Layer.mergeAll(rollupStore({ path: `${dir}/rollups.db`, tiers: keepMinutes }), rollupQueries({ path: `${dir}/rollups.db`, tiers: keepMinutes }))))

const query = (app: string, measure: Measure, options: {
  readonly from: string
  readonly to: string
  readonly granularity?: Granularity
  readonly groupBy?: ReadonlyArray<Dimension>
  readonly filters?: ReadonlyArray<readonly [Dimension, ReadonlyArray<string>]>
  readonly name?: string
  readonly sum?: string
}) =>
  Effect.flatMap(RollupReadModel, (model) =>
    model.query({
      app,
      measure,
      granularity: options.granularity ?? "minute",
      fromMinute: minuteOf(options.from),
      toMinute: minuteOf(options.to),
      groupBy: options.groupBy ?? [],
      filters: new Map(options.filters ?? []),
      ...(options.name === undefined ? {} : { name: options.name }),
      ...(options.sum === undefined ? {} : { sum: options.sum })
    }, "test"))

const total = (rows: ReadonlyArray<{ readonly value?: unknown }>) => rows.reduce((sum, row) => sum + Number(row.value), 0)

const T0 = "2026-11-28T10:00:00.000Z"
const at = (minutes: number, seconds = 0) => new Date(Date.parse(T0) + minutes * 60_000 + seconds * 1_000).toISOString()

layer(Layer.provideMerge(rollups, layerTestNats()), { excludeTestServices: true, timeout: 60_000 })("rollups of clean events and sessions", (it) => {
  it.effect("count events, exact unique devices, sessions and custom events, by any two dimensions, filtered, per minute, hour and day", () =>
    Effect.gen(function*() {
      yield* Effect.forkScoped(runRollupConsumers({ batchSize: 50 }))
      const app = "101"
      const ios = { platform: "ios", country: "us" }
      const android = { platform: "android", country: "fr" }
      const events = [
        cleanEvent(app, "d1", 0, at(0, 5), { dims: ios }),
        cleanEvent(app, "d1", 1, at(0, 50), { type: "custom", name: "purchase", props: { amount: 5, currency: "EUR" }, dims: ios }),
        cleanEvent(app, "d1", 2, at(1, 10), { type: "custom", name: "purchase", props: { amount: 7.5 }, dims: ios }),
        cleanEvent(app, "d2", 0, at(0, 20), { dims: ios }),
        cleanEvent(app, "d3", 0, at(0, 30), { dims: android }),
        cleanEvent(app, "d3", 1, at(2, 0), { type: "custom", name: "level", props: { amount: 100 }, dims: android }),
        cleanEvent(app, "d3", 2, at(2, 1), { type: "impression", campaignId: "77", creativeId: "c1", dims: { ...android, advertiserId: "9" } }),
        // three months late: its own bucket, not today's
        cleanEvent(app, "d4", 0, "2026-08-28T10:00:30.000Z", { dims: ios, receivedAt: at(2, 0) }),
        // another app: never in app 101's answers
        cleanEvent("102", "d1", 0, at(0, 5), { dims: ios })
      ]
      yield* publishClean(events)
      yield* publishSessions([
        sessionEnded(app, "d1", at(0, 5), 20, { dims: ios }),
        sessionEnded(app, "d2", at(0, 20), 100, { dims: ios }),
        sessionEnded(app, "d3", at(0, 30), 4_000, { dims: android, endedBy: "inactivity" })
      ])
      const day = { from: "2026-11-28T00:00:00Z", to: "2026-11-29T00:00:00Z" }
      yield* eventually(query(app, "events", day), (rows) => total(rows) === 7)
      yield* eventually(query(app, "sessions", day), (rows) => total(rows) === 3)

      // by minute, grouped by two dimensions
      assert.deepStrictEqual(yield* query(app, "events", { ...day, groupBy: ["platform", "country"] }), [
        { time: at(0), platform: "android", country: "fr", value: 1 },
        { time: at(0), platform: "ios", country: "us", value: 3 },
        { time: at(1), platform: "ios", country: "us", value: 1 },
        { time: at(2), platform: "android", country: "fr", value: 2 }
      ])
      // per hour and day; filtered (a dimension given twice matches either value)
      assert.deepStrictEqual(yield* query(app, "events", { ...day, granularity: "hour", groupBy: ["type"] }), [
        { time: at(0), type: "custom", value: 3 },
        { time: at(0), type: "impression", value: 1 },
        { time: at(0), type: "open", value: 3 }
      ])
      assert.deepStrictEqual(yield* query(app, "events", { ...day, granularity: "day", filters: [["country", ["us"]]] }), [
        { time: "2026-11-28T00:00:00.000Z", value: 4 }
      ])
      assert.deepStrictEqual(yield* query(app, "events", { ...day, granularity: "day", filters: [["country", ["us", "fr"]], ["platform", ["android"]]] }), [
        { time: "2026-11-28T00:00:00.000Z", value: 3 }
      ])
      // ad events group by campaign and advertiser
      assert.deepStrictEqual(yield* query(app, "events", { ...day, granularity: "day", groupBy: ["campaignId", "advertiserId"], filters: [["type", ["impression"]]] }), [
        { time: "2026-11-28T00:00:00.000Z", campaignId: "77", advertiserId: "9", value: 1 }
      ])
      // the late event is in its own minute, three months back
      assert.deepStrictEqual(yield* query(app, "events", { from: "2026-08-28T00:00:00Z", to: "2026-08-29T00:00:00Z", granularity: "hour" }), [
        { time: "2026-08-28T10:00:00.000Z", value: 1 }
      ])
      // unique devices: exact per bucket, not a sum of minutes (d1 is in minutes 0 and 1, d3 in 0 and 2)
      assert.deepStrictEqual((yield* query(app, "devices", day)).map((r) => r.value), [3, 1, 1])
      assert.deepStrictEqual(yield* query(app, "devices", { ...day, granularity: "hour" }), [{ time: at(0), value: 3 }])
      assert.deepStrictEqual(yield* query(app, "devices", { ...day, granularity: "day", groupBy: ["platform"] }), [
        { time: "2026-11-28T00:00:00.000Z", platform: "android", value: 1 },
        { time: "2026-11-28T00:00:00.000Z", platform: "ios", value: 2 }
      ])
      // custom events: counted by name, a numeric prop summed (no code per name)
      assert.deepStrictEqual(yield* query(app, "custom", { ...day, granularity: "hour", name: "purchase" }), [{ time: at(0), value: 2 }])
      assert.deepStrictEqual(yield* query(app, "custom", { ...day, granularity: "hour", name: "purchase", sum: "amount" }), [{ time: at(0), value: 12.5 }])
      assert.deepStrictEqual(yield* query(app, "custom", { ...day, granularity: "hour", name: "level", sum: "amount" }), [{ time: at(0), value: 100 }])
      assert.deepStrictEqual(yield* query(app, "custom", { ...day, name: "purchase", sum: "currency" }), [])
      // sessions by start, their mean length and distribution
      assert.deepStrictEqual(yield* query(app, "sessions", { ...day, groupBy: ["platform"] }), [
        { time: at(0), platform: "android", value: 1 },
        { time: at(0), platform: "ios", value: 2 }
      ])
      assert.deepStrictEqual(yield* query(app, "sessionLength", { ...day, granularity: "day" }), [
        {
          time: "2026-11-28T00:00:00.000Z",
          value: (20 + 100 + 4_000) / 3,
          distribution: [{ upToSeconds: 30, sessions: 1 }, { upToSeconds: 180, sessions: 1 }, { upToSeconds: null, sessions: 1 }]
        }
      ])
      assert.deepStrictEqual((yield* query("102", "events", day)).map((r) => r.value), [1])
    }))

  it.effect("count the clean events of CleanBatch messages and of single-event messages written before batches, each once", () =>
    Effect.gen(function*() {
      const app = "401"
      const day = { from: "2026-11-28T00:00:00Z", to: "2026-11-29T00:00:00Z", granularity: "day" as const }
      const batched = Array.from({ length: 50 }, (_, i) => cleanEvent(app, `b${i % 10}`, i, at(i % 3, i % 60)))
      const single = Array.from({ length: 5 }, (_, i) => cleanEvent(app, `s${i}`, 0, at(4)))
      yield* publishClean(single)
      yield* publishCleanBatches(batched, 7)
      yield* Effect.scoped(Effect.gen(function*() {
        yield* Effect.forkScoped(runRollupConsumers({ batchSize: 3 }))
        yield* eventually(query(app, "events", day), (rows) => total(rows) === 55, "30 seconds")
      }))
      assert.strictEqual(total(yield* query(app, "devices", day)), 15)
      // a batch delivered again (its sequence at or below the checkpoint) counts nothing
      const store = yield* RollupStore
      const checkpoint = (yield* store.checkpoint(StreamNames.eventsClean))!
      const again = { seq: checkpoint, storedAtMillis: Date.parse(at(0)), body: JSON.stringify({ app, events: batched.slice(49) }) }
      assert.strictEqual(yield* store.apply("events", StreamNames.eventsClean, [again], { batchSeqs: [checkpoint], lastSeq: checkpoint }), 0)
      assert.strictEqual(total(yield* query(app, "events", day)), 55)
    }))

  it.effect("report the messages the stream dropped before the rollups came to them (FOLLOW_MAX_BYTES), and count the rest", () =>
    Effect.gen(function*() {
      const app = "402"
      const day = { from: "2026-11-28T00:00:00Z", to: "2026-11-29T00:00:00Z", granularity: "day" as const }
      const { manager } = yield* Nats
      const lost = Effect.map(Metric.value(Metric.withAttributes(rollupMessagesLost, { stream: StreamNames.eventsClean })), (state) => state.count)
      yield* Effect.scoped(Effect.gen(function*() {
        yield* Effect.forkScoped(runRollupConsumers({ batchSize: 3 }))
        yield* publishCleanBatches([cleanEvent(app, "a", 0, at(0))], 1)
        yield* eventually(query(app, "events", day), (rows) => total(rows) === 1, "30 seconds")
      }))
      const before = yield* lost
      // the rollups stopped (no lease holder, a locked file); meanwhile the stream lets two messages go
      yield* publishCleanBatches([cleanEvent(app, "b", 0, at(1)), cleanEvent(app, "c", 0, at(1)), cleanEvent(app, "d", 0, at(1))], 1)
      const last = (yield* tryNats("info", () => manager.streams.info(StreamNames.eventsClean))).state.last_seq
      for (const seq of [last - 2, last - 1]) yield* tryNats("delete", () => manager.streams.deleteMessage(StreamNames.eventsClean, seq))
      yield* Effect.scoped(Effect.gen(function*() {
        yield* Effect.forkScoped(runRollupConsumers({ batchSize: 3 }))
        yield* eventually(query(app, "events", day), (rows) => total(rows) === 2, "30 seconds")
        // counted lost just after the batch's commit, which the query may see first
        yield* eventually(lost, (n) => n - before >= 2, "30 seconds")
      }))
      assert.strictEqual((yield* lost) - before, 2)
    }))

  it.effect("refuse a batch with a hole the stream still holds; apply it once the hole is gone from the stream", () =>
    Effect.gen(function*() {
      // A process paused past the rollups' lease resumed and pulled from the consumer its successor had
      // made anew: the successor's batches came with holes where the other had taken messages, moved the
      // checkpoint past them, and they then counted for nothing (stop 25's outside attack: 26,500 events;
      // the first fix, which looked only at where a batch starts, still lost 1 message in 3 here).
      const app = "403"
      const day = { from: "2026-11-28T00:00:00Z", to: "2026-11-29T00:00:00Z", granularity: "day" as const }
      const store = yield* RollupStore
      const stream = "ROLLUPS_GAP_TEST"
      const after = (yield* store.checkpoint(stream)) ?? 0
      const message = (seq: number) => ({ seq, storedAtMillis: Date.parse(at(0)), body: JSON.stringify(cleanEvent(app, `g${seq - after}`, 0, at(0))) })
      const batch = (seqs: ReadonlyArray<number>, gone: { readonly goneBelow?: number; readonly gone?: ReadonlyArray<number> } = {}) =>
        store.apply("events", stream, seqs.map(message), { batchSeqs: seqs, lastSeq: Math.max(...seqs), ...gone })
      assert.strictEqual(yield* batch([after + 1]), 1)
      // after + 2 and + 3 taken by another consumer, still on the stream: a batch past them is refused, and
      // so is one that starts in order with a hole inside; the checkpoint is kept
      for (const refused of [batch([after + 4]), batch([after + 2, after + 4]), batch([after + 4], { gone: [after + 2] })]) {
        assert.isTrue(Exit.isFailure(yield* Effect.exit(refused)))
      }
      assert.strictEqual(yield* store.checkpoint(stream), after + 1)
      // taken again in order: every one counted
      assert.strictEqual(yield* batch([after + 2, after + 3, after + 4]), 3)
      // the stream let after + 5 go (deleted), and everything below after + 8 (its first sequence now)
      assert.strictEqual(yield* batch([after + 6], { gone: [after + 5] }), 1)
      assert.strictEqual(yield* batch([after + 9], { goneBelow: after + 8, gone: [after + 8] }), 1)
      assert.strictEqual(yield* store.checkpoint(stream), after + 9)
      assert.strictEqual(total(yield* query(app, "events", day)), 6)
    }))

  it.effect("buckets minutes before 1970 into their own hour and day (floored, not rounded toward zero)", () =>
    Effect.gen(function*() {
      const app = "501"
      yield* publishCleanBatches([
        cleanEvent(app, "d1", 0, "1969-12-31T23:30:00.000Z"),
        cleanEvent(app, "d1", 1, "1970-01-01T00:10:00.000Z"),
        cleanEvent(app, "d2", 0, "1969-12-30T12:00:00.000Z")
      ], 10)
      yield* Effect.scoped(Effect.gen(function*() {
        yield* Effect.forkScoped(runRollupConsumers({ batchSize: 10 }))
        yield* eventually(query(app, "events", { from: "1969-12-30T00:00:00Z", to: "1970-01-02T00:00:00Z", granularity: "day" }), (rows) => total(rows) === 3, "30 seconds")
      }))
      const hours = yield* query(app, "events", { from: "1969-12-31T23:00:00Z", to: "1970-01-01T01:00:00Z", granularity: "hour" })
      assert.deepStrictEqual(hours.map((r) => [r.time, r.value]), [["1969-12-31T23:00:00.000Z", 1], ["1970-01-01T00:00:00.000Z", 1]])
      const days = yield* query(app, "devices", { from: "1969-12-30T00:00:00Z", to: "1970-01-02T00:00:00Z", granularity: "day" })
      assert.deepStrictEqual(days.map((r) => [r.time, r.value]), [["1969-12-30T00:00:00.000Z", 1], ["1969-12-31T00:00:00.000Z", 1], ["1970-01-01T00:00:00.000Z", 1]])
    }))

  it.effect("refuse an answer over its characters (MetricsTooLarge), however few its rows", () =>
    Effect.gen(function*() {
      const app = "601"
      const long = (i: number) => `${i}`.padEnd(128, "x")
      yield* publishCleanBatches(Array.from({ length: 40 }, (_, i) => cleanEvent(app, `d${i}`, 0, at(0), { dims: { platform: long(i), country: long(i), model: long(i) } })), 40)
      const day = { from: "2026-11-28T00:00:00Z", to: "2026-11-29T00:00:00Z", granularity: "day" as const }
      yield* Effect.scoped(Effect.gen(function*() {
        yield* Effect.forkScoped(runRollupConsumers({ batchSize: 10 }))
        yield* eventually(query(app, "events", day), (rows) => total(rows) === 40, "30 seconds")
      }))
      const ask = (maxChars: number) =>
        Effect.flatMap(RollupReadModel, (model) =>
          model.query({ app, measure: "events", granularity: "day", fromMinute: minuteOf(day.from), toMinute: minuteOf(day.to), groupBy: ["platform", "country", "model"], filters: new Map(), maxRows: 10_000, maxChars }, "test"))
      // 40 rows of three 128-character values: ~17,000 characters
      assert.strictEqual((yield* ask(20_000)).length, 40)
      const refused = yield* Effect.flip(ask(10_000))
      assert.strictEqual(refused._tag, "MetricsTooLarge")
    }))

  it.effect("set an undecodable message aside (DEADLETTERS), count the rest of its batch once", () =>
    Effect.gen(function*() {
      const app = "301"
      const day = { from: "2026-11-28T00:00:00Z", to: "2026-11-29T00:00:00Z", granularity: "day" as const }
      const { jetstream, manager } = yield* Nats
      const events = Array.from({ length: 20 }, (_, i) => cleanEvent(app, `d${i}`, 0, at(0, i)))
      // published before the consumers start: one pulled batch holds the good and the bad
      yield* publishClean(events.slice(0, 10))
      yield* tryNats("publish", () => jetstream.publish(cleanEventsSubject(app), "{not json"))
      yield* tryNats("publish", () => jetstream.publish(cleanEventsSubject(app), JSON.stringify({ ...events[10]!, type: "teleport" })))
      // marked as checked, but against another version of the schema than this one's: decoded, and refused
      const otherVersion = headers()
      otherVersion.set(checkedHeader, "CleanBatch/0")
      yield* tryNats("publish", () => jetstream.publish(cleanEventsSubject(app), JSON.stringify({ app, events: [{ ...events[10]!, type: "teleport" }] }), { headers: otherVersion }))
      yield* publishClean(events.slice(10))
      yield* Effect.scoped(Effect.gen(function*() {
        yield* Effect.forkScoped(runRollupConsumers({ batchSize: 500 }))
        yield* eventually(query(app, "events", day), (rows) => total(rows) === 20, "30 seconds")
      }))
      const set = (yield* streamMessages(StreamNames.deadLetters)).filter((m) => (m.body as { subject?: string }).subject === cleanEventsSubject(app))
      assert.deepStrictEqual(set.map((m) => (m.body as { reason: string }).reason), ["undecodable", "undecodable", "undecodable"])
      const store = yield* RollupStore
      const last = (yield* tryNats("info", () => manager.streams.info(StreamNames.eventsClean))).state.last_seq
      assert.strictEqual(yield* store.checkpoint(StreamNames.eventsClean), last)
      assert.strictEqual(total(yield* query(app, "events", day)), 20)
    }))

  it.effect("count nothing twice: a batch applied again, and consumers restarted, change nothing", () =>
    Effect.gen(function*() {
      const app = "201"
      const events = Array.from({ length: 300 }, (_, i) => cleanEvent(app, `d${i % 30}`, i, at(i % 5, i % 60)))
      const day = { from: "2026-11-28T00:00:00Z", to: "2026-11-29T00:00:00Z", granularity: "day" as const }
      yield* Effect.scoped(Effect.gen(function*() {
        yield* Effect.forkScoped(runRollupConsumers({ batchSize: 40 }))
        yield* publishClean(events)
        yield* eventually(query(app, "events", day), (rows) => total(rows) === 300, "30 seconds")
      }))
      const store = yield* RollupStore
      const checkpoint = (yield* store.checkpoint(StreamNames.eventsClean))!
      // what a redelivery after a crash between commit and ack would bring: the same messages again
      const again = events.slice(-50).map((event, i) => ({ seq: checkpoint - 49 + i, body: JSON.stringify(event), storedAtMillis: Date.parse(event.time) }))
      assert.strictEqual(yield* store.apply("events", StreamNames.eventsClean, again, { batchSeqs: again.map((m) => m.seq), lastSeq: checkpoint }), 0)
      assert.strictEqual(total(yield* query(app, "events", day)), 300)

      // restarted from the checkpoint: nothing counted again, new events counted
      yield* Effect.forkScoped(runRollupConsumers({ batchSize: 40 }))
      yield* publishClean([cleanEvent(app, "d999", 0, at(3))])
      yield* eventually(query(app, "events", day), (rows) => total(rows) >= 301, "30 seconds")
      assert.strictEqual(total(yield* query(app, "events", day)), 301)
      assert.strictEqual(total(yield* query(app, "devices", day)), 31)

      // a message not acknowledged within the ack wait comes again, possibly in the same pulled batch as
      // its first copy, and after newer ones: each sequence counts once, the checkpoint the highest
      const latest = (yield* store.checkpoint(StreamNames.eventsClean))!
      const more = [cleanEvent(app, "d900", 0, at(1)), cleanEvent(app, "d901", 0, at(1)), cleanEvent(app, "d902", 0, at(1))]
      const delivered = (i: number) => ({ seq: latest + 1 + i, body: JSON.stringify(more[i]!), storedAtMillis: Date.parse(more[i]!.time) })
      const redelivered = [delivered(0), delivered(1), delivered(0), delivered(2), delivered(1)]
      assert.strictEqual(yield* store.apply("events", StreamNames.eventsClean, redelivered, { batchSeqs: redelivered.map((m) => m.seq), lastSeq: latest + 2 }), 3)
      assert.strictEqual(yield* store.checkpoint(StreamNames.eventsClean), latest + 3)
      assert.strictEqual(total(yield* query(app, "events", day)), 304)
      assert.strictEqual(yield* store.apply("events", StreamNames.eventsClean, [delivered(2)], { batchSeqs: [latest + 3], lastSeq: latest + 3 }), 0)
      assert.strictEqual(total(yield* query(app, "events", day)), 304)
    }))
})
