/**
 * The EventStore contract, run against every implementation (SQLite, KurrentDB).
 * Every test writes to its own streams, so the suite also runs against a shared EventStoreDB.
 */
import { randomUUID } from "node:crypto"
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Fiber, Stream } from "effect"
import type { Layer } from "effect"
import { EventStore } from "../../domain/EventStore.ts"
import type { EventData, RecordedEvent, StreamAppend } from "../../domain/EventStore.ts"

const streamName = (type: string) => `${type}-${randomUUID()}`
const event = (type: string, data: EventData["data"] = {}, metadata: EventData["metadata"] = {}): EventData => ({
  eventId: randomUUID(),
  type,
  data,
  metadata
})
const events = (n: number, type = "Counted") => Array.from({ length: n }, (_, i) => event(type, { i }))
const revisions = (recorded: ReadonlyArray<RecordedEvent>) => recorded.map((e) => e.revision)
const positions = (recorded: ReadonlyArray<RecordedEvent>) => recorded.map((e) => e.position)
const ids = (recorded: ReadonlyArray<RecordedEvent | EventData>) => recorded.map((e) => e.eventId)
const append = (stream: string, appended: ReadonlyArray<EventData>, expectedRevision: StreamAppend["expectedRevision"]): StreamAppend => ({
  stream,
  events: appended,
  expectedRevision
})
const assertIncreasing = (values: ReadonlyArray<number>) => {
  for (let i = 1; i < values.length; i++) assert.isTrue(values[i]! > values[i - 1]!, `${values[i]} after ${values[i - 1]}`)
}

export const eventStoreSuite = <E>(name: string, storeLayer: Layer.Layer<EventStore, E>) =>
  describe(name, () => {
    layer(storeLayer, { excludeTestServices: true, timeout: "60 seconds" })((it) => {
      it.effect("appends to a new stream with no_stream and numbers revisions from 0, contiguously", () =>
        Effect.gen(function*() {
          const store = yield* EventStore
          const stream = streamName("account")
          const first = yield* store.appendToStream(stream, events(3), "no_stream")
          assert.strictEqual(first.nextRevision, 2)
          const second = yield* store.appendToStream(stream, events(2), 2)
          assert.strictEqual(second.nextRevision, 4)
          assert.isTrue(second.position > first.position)
          const recorded = yield* store.readStream(stream)
          assert.deepStrictEqual(revisions(recorded), [0, 1, 2, 3, 4])
          assert.strictEqual(recorded[4]!.position, second.position)
          assert.strictEqual(recorded[2]!.position, first.position)
        }))

      it.effect("gives positions that increase in global order across streams", () =>
        Effect.gen(function*() {
          const store = yield* EventStore
          const [a, b] = [streamName("a"), streamName("b")]
          const results = [
            yield* store.appendToStream(a, events(1), "no_stream"),
            yield* store.appendToStream(b, events(2), "no_stream"),
            yield* store.appendToStream(a, events(1), 0)
          ]
          assertIncreasing(results.map((r) => r.position))
          const all = [...(yield* store.readStream(a)), ...(yield* store.readStream(b))]
          assert.strictEqual(new Set(positions(all)).size, 4, "every event has its own position")
        }))

      it.effect("rejects an append at a stale revision, naming the actual revision, and writes nothing", () =>
        Effect.gen(function*() {
          const store = yield* EventStore
          const stream = streamName("order")
          yield* store.appendToStream(stream, events(2), "no_stream")
          const stale = yield* Effect.flip(store.appendToStream(stream, events(3), 0))
          assert.strictEqual(stale._tag, "WrongExpectedRevision")
          assert.deepInclude(stale, { stream, expected: 0, actual: 1 })
          const existing = yield* Effect.flip(store.appendToStream(stream, events(1), "no_stream"))
          assert.deepInclude(existing, { _tag: "WrongExpectedRevision", actual: 1 })
          assert.deepStrictEqual(revisions(yield* store.readStream(stream)), [0, 1])
        }))

      it.effect("rejects a revision or stream_exists on an absent stream with actual no_stream", () =>
        Effect.gen(function*() {
          const store = yield* EventStore
          const stream = streamName("absent")
          const atRevision = yield* Effect.flip(store.appendToStream(stream, events(1), 0))
          assert.deepInclude(atRevision, { _tag: "WrongExpectedRevision", expected: 0, actual: "no_stream" })
          const exists = yield* Effect.flip(store.appendToStream(stream, events(1), "stream_exists"))
          assert.deepInclude(exists, { _tag: "WrongExpectedRevision", expected: "stream_exists", actual: "no_stream" })
          assert.deepStrictEqual(yield* store.readStream(stream), [])
        }))

      it.effect("appends with any whatever the stream's state, and with stream_exists once it exists", () =>
        Effect.gen(function*() {
          const store = yield* EventStore
          const stream = streamName("any")
          assert.strictEqual((yield* store.appendToStream(stream, events(1), "any")).nextRevision, 0)
          assert.strictEqual((yield* store.appendToStream(stream, events(2), "any")).nextRevision, 2)
          assert.strictEqual((yield* store.appendToStream(stream, events(1), "stream_exists")).nextRevision, 3)
        }))

      it.effect("treats a retried append (same event ids, same place) as already done", () =>
        Effect.gen(function*() {
          const store = yield* EventStore
          const stream = streamName("retry")
          const batch = events(2)
          const first = yield* store.appendToStream(stream, batch, "no_stream")
          const retried = yield* store.appendToStream(stream, batch, "no_stream")
          assert.deepStrictEqual(retried, first)
          const next = events(1)
          yield* store.appendToStream(stream, next, 1)
          yield* store.appendToStream(stream, next, 1)
          assert.deepStrictEqual(ids(yield* store.readStream(stream)), ids([...batch, ...next]))
        }))

      it.effect("reads a stream forwards, backwards, from a revision, up to maxCount; an absent one as empty", () =>
        Effect.gen(function*() {
          const store = yield* EventStore
          const stream = streamName("read")
          const written = events(5)
          yield* store.appendToStream(stream, written, "no_stream")
          assert.deepStrictEqual(ids(yield* store.readStream(stream)), ids(written))
          assert.deepStrictEqual(revisions(yield* store.readStream(stream, { fromRevision: 2, maxCount: 2 })), [2, 3])
          assert.deepStrictEqual(revisions(yield* store.readStream(stream, { direction: "backwards" })), [4, 3, 2, 1, 0])
          assert.deepStrictEqual(
            revisions(yield* store.readStream(stream, { direction: "backwards", fromRevision: 3, maxCount: 2 })),
            [3, 2]
          )
          assert.deepStrictEqual(revisions(yield* store.readStream(stream, { direction: "backwards", maxCount: 1 })), [4])
          assert.deepStrictEqual(yield* store.readStream(streamName("never-written")), [])
        }))

      it.effect("reads all streams in commit order, forwards and backwards, from a position, up to maxCount", () =>
        Effect.gen(function*() {
          const store = yield* EventStore
          const [a, b] = [streamName("all-a"), streamName("all-b")]
          const ours = new Set([a, b])
          const written: Array<EventData> = []
          const append = (stream: string, n: number) => {
            const batch = events(n)
            written.push(...batch)
            return store.appendToStream(stream, batch, "any")
          }
          yield* append(a, 2)
          yield* append(b, 1)
          yield* append(a, 1)
          const last = yield* append(b, 2)
          const mine = (recorded: ReadonlyArray<RecordedEvent>) => recorded.filter((e) => ours.has(e.stream))
          const firstPosition = (yield* store.readStream(a))[0]!.position

          const forwards = yield* store.readAll({ fromPosition: firstPosition })
          assert.strictEqual(forwards[0]!.position, firstPosition, "fromPosition is inclusive")
          assert.deepStrictEqual(ids(mine(forwards)), ids(written))
          assertIncreasing(positions(forwards))

          const page = yield* store.readAll({ fromPosition: firstPosition, maxCount: 2 })
          assert.strictEqual(page.length, 2)
          assert.deepStrictEqual(ids(page), ids(forwards.slice(0, 2)))

          const backwards = yield* store.readAll({ direction: "backwards", fromPosition: last.position })
          assert.strictEqual(backwards[0]!.position, last.position, "fromPosition is inclusive backwards too")
          assert.deepStrictEqual(ids(mine(backwards)), ids(written).reverse())
          const one = yield* store.readAll({ direction: "backwards", fromPosition: last.position, maxCount: 1 })
          assert.deepStrictEqual(ids(one), [written[written.length - 1]!.eventId])

          const head = yield* store.headPosition
          assert.isDefined(head)
          assert.isTrue(head! >= last.position)
          const newest = yield* store.readAll({ direction: "backwards", maxCount: 1 })
          assert.isTrue(newest[0]!.position >= last.position)
        }))

      it.effect("round-trips data and metadata as JSON, with the stored envelope", () =>
        Effect.gen(function*() {
          const store = yield* EventStore
          const stream = streamName("json")
          const data = { name: "Zoë ✓", n: 12.5, big: "18446744073709551615", list: [1, "two", null, { deep: true }] }
          const metadata = { correlationId: randomUUID(), causationId: null, tags: ["a"] }
          const written = [event("Renamed", data, metadata), event("Listed", [1, 2, 3], {}), event("Said", "plain text", { n: 0 })]
          yield* store.appendToStream(stream, written, "no_stream")
          const recorded = yield* store.readStream(stream)
          assert.deepStrictEqual(recorded.map((e) => [e.eventId, e.type, e.data, e.metadata, e.stream]),
            written.map((e) => [e.eventId, e.type, e.data, e.metadata, stream]))
          for (const e of recorded) {
            assert.match(e.recordedAt, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/)
          }
          const viaAll = yield* store.readAll({ fromPosition: recorded[0]!.position, maxCount: 1 })
          assert.deepStrictEqual(viaAll[0], recorded[0])
        }))

      it.effect("lands concurrent appends to many streams with correct revisions", () =>
        Effect.gen(function*() {
          const store = yield* EventStore
          const streams = Array.from({ length: 40 }, () => streamName("concurrent"))
          yield* Effect.forEach(streams, (stream) =>
            // 1, 2, 1, 2, 1 events: each append expects the revision the previous one left
            Effect.forEach(["no_stream", 0, 2, 3, 5] as const, (expected, i) =>
              store.appendToStream(stream, events(i % 2 + 1), expected)), { concurrency: "unbounded" })
          for (const stream of streams) {
            const recorded = yield* store.readStream(stream)
            assert.deepStrictEqual(revisions(recorded), [0, 1, 2, 3, 4, 5, 6])
            assertIncreasing(positions(recorded))
          }
        }))

      it.effect("lets exactly one of many racing appends at the same revision win", () =>
        Effect.gen(function*() {
          const store = yield* EventStore
          const stream = streamName("race")
          const results = yield* Effect.forEach(Array.from({ length: 20 }), () =>
            Effect.result(store.appendToStream(stream, events(2), "no_stream")), { concurrency: "unbounded" })
          assert.strictEqual(results.filter((r) => r._tag === "Success").length, 1)
          for (const r of results) {
            if (r._tag === "Failure") assert.deepInclude(r.failure, { _tag: "WrongExpectedRevision", actual: 1 })
          }
          assert.deepStrictEqual(revisions(yield* store.readStream(stream)), [0, 1])
        }))

      it.effect("appends to many streams in one commit, with one result per stream in the order given", () =>
        Effect.gen(function*() {
          const store = yield* EventStore
          const [fresh, existing, anyState] = [streamName("multi-fresh"), streamName("multi-existing"), streamName("multi-any")]
          yield* store.appendToStream(existing, events(2), "no_stream")
          const written = [events(2), events(1), events(3)] as const
          const results = yield* store.appendToStreams([
            append(fresh, written[0], "no_stream"),
            append(existing, written[1], 1),
            append(anyState, written[2], "any")
          ])
          assert.deepStrictEqual(results.map((r) => r.nextRevision), [1, 2, 2])
          assert.deepStrictEqual(ids(yield* store.readStream(fresh)), ids(written[0]))
          assert.deepStrictEqual(ids((yield* store.readStream(existing)).slice(2)), ids(written[1]))
          assert.deepStrictEqual(ids(yield* store.readStream(anyState)), ids(written[2]))
          for (const [i, stream] of [fresh, existing, anyState].entries()) {
            const recorded = yield* store.readStream(stream)
            assert.strictEqual(results[i]!.position, recorded[recorded.length - 1]!.position, "position of the stream's last event")
          }
        }))

      it.effect("gives a multi-append's events global positions in the order given", () =>
        Effect.gen(function*() {
          const store = yield* EventStore
          const streams = [streamName("order-c"), streamName("order-a"), streamName("order-b")]
          const written = streams.map(() => events(2))
          const results = yield* store.appendToStreams(streams.map((stream, i) => append(stream, written[i]!, "no_stream")))
          assertIncreasing(results.map((r) => r.position))
          const first = (yield* store.readStream(streams[0]!))[0]!.position
          const all = (yield* store.readAll({ fromPosition: first })).filter((e) => streams.includes(e.stream))
          assert.deepStrictEqual(ids(all), ids(written.flat()))
          assertIncreasing(positions(all))
        }))

      it.effect("writes nothing when any stream of a multi-append conflicts, naming every conflicting stream", () =>
        Effect.gen(function*() {
          const store = yield* EventStore
          const [ok, stale, absent, exists, fresh] = ["ok", "stale", "absent", "exists", "fresh"].map((t) => streamName(`conflict-${t}`)) as [
            string,
            string,
            string,
            string,
            string
          ]
          yield* store.appendToStream(stale, events(3), "no_stream")
          yield* store.appendToStream(exists, events(1), "no_stream")
          const before = yield* store.headPosition
          const error = yield* Effect.flip(store.appendToStreams([
            append(ok, events(1), "no_stream"),
            append(stale, events(1), 0),
            append(absent, events(1), 4),
            append(fresh, events(2), "stream_exists"),
            append(exists, events(1), "no_stream")
          ]))
          assert.strictEqual(error._tag, "WrongExpectedRevisions")
          if (error._tag !== "WrongExpectedRevisions") return
          assert.deepStrictEqual(error.conflicts.map((c) => ({ ...c })), [
            { stream: stale, expected: 0, actual: 2 },
            { stream: absent, expected: 4, actual: "no_stream" },
            { stream: fresh, expected: "stream_exists", actual: "no_stream" },
            { stream: exists, expected: "no_stream", actual: 0 }
          ])
          assert.deepStrictEqual(yield* store.readStream(ok), [])
          assert.deepStrictEqual(revisions(yield* store.readStream(stale)), [0, 1, 2])
          assert.deepStrictEqual(revisions(yield* store.readStream(exists)), [0])
          assert.strictEqual(yield* store.headPosition, before, "nothing was committed")
          // the streams that did not conflict can be appended as they were asked
          const retried = yield* store.appendToStreams([append(ok, events(1), "no_stream"), append(stale, events(1), 2)])
          assert.deepStrictEqual(retried.map((r) => r.nextRevision), [0, 3])
        }))

      it.effect("checks no_stream, stream_exists, a revision and any, each on its own stream", () =>
        Effect.gen(function*() {
          const store = yield* EventStore
          const [absent, present, atRevision, anyAbsent] = ["absent", "present", "revision", "any"].map((t) => streamName(`expect-${t}`)) as [
            string,
            string,
            string,
            string
          ]
          yield* store.appendToStream(present, events(1), "no_stream")
          yield* store.appendToStream(atRevision, events(3), "no_stream")
          const results = yield* store.appendToStreams([
            append(absent, events(1), "no_stream"),
            append(present, events(1), "stream_exists"),
            append(atRevision, events(1), 2),
            append(anyAbsent, events(1), "any")
          ])
          assert.deepStrictEqual(results.map((r) => r.nextRevision), [0, 1, 3, 0])
        }))

      it.effect("treats a retried multi-append (same event ids, same places) as already done", () =>
        Effect.gen(function*() {
          const store = yield* EventStore
          const [a, b, c] = [streamName("multi-retry-a"), streamName("multi-retry-b"), streamName("multi-retry-c")]
          yield* store.appendToStream(b, events(1), "no_stream")
          const appends = [append(a, events(2), "no_stream"), append(b, events(1), 0), append(c, events(1), "any")]
          const first = yield* store.appendToStreams(appends)
          const retried = yield* store.appendToStreams(appends)
          assert.deepStrictEqual(retried, first)
          assert.deepStrictEqual(revisions(yield* store.readStream(a)), [0, 1])
          assert.deepStrictEqual(revisions(yield* store.readStream(b)), [0, 1])
          assert.deepStrictEqual(revisions(yield* store.readStream(c)), [0])
          // after a stream moved on, its part of the retry is still recognised as done
          yield* store.appendToStream(a, events(1), 1)
          assert.deepStrictEqual((yield* store.appendToStreams(appends)).map((r) => r.nextRevision), [1, 1, 0])
        }))

      it.effect("lets exactly one of concurrent multi-appends touching the same stream win", () =>
        Effect.gen(function*() {
          const store = yield* EventStore
          const shared = streamName("multi-shared")
          const own = Array.from({ length: 12 }, () => streamName("multi-own"))
          const results = yield* Effect.forEach(own, (stream) =>
            Effect.result(store.appendToStreams([append(stream, events(1), "no_stream"), append(shared, events(1), "no_stream")])), {
            concurrency: "unbounded"
          })
          const winners = results.flatMap((r, i) => (r._tag === "Success" ? [i] : []))
          assert.strictEqual(winners.length, 1)
          for (const [i, r] of results.entries()) {
            const written = yield* store.readStream(own[i]!)
            if (r._tag === "Success") {
              assert.strictEqual(written.length, 1)
              continue
            }
            assert.deepInclude(r.failure, { _tag: "WrongExpectedRevisions" })
            if (r.failure._tag === "WrongExpectedRevisions") {
              assert.deepStrictEqual(r.failure.conflicts.map((c) => ({ ...c })), [{ stream: shared, expected: "no_stream", actual: 0 }])
            }
            assert.deepStrictEqual(written, [], "a losing multi-append wrote none of its streams")
          }
          assert.deepStrictEqual(revisions(yield* store.readStream(shared)), [0])
        }))

      it.effect("answers an empty multi-append with no results, and a stream with no events only checks it", () =>
        Effect.gen(function*() {
          const store = yield* EventStore
          assert.deepStrictEqual(yield* store.appendToStreams([]), [])
          const [checked, written] = [streamName("check-only"), streamName("check-written")]
          const head = yield* store.appendToStream(checked, events(2), "no_stream")
          const results = yield* store.appendToStreams([append(checked, [], 1), append(written, events(1), "no_stream")])
          assert.deepStrictEqual(results[0], head)
          assert.strictEqual(results[1]!.nextRevision, 0)
          const stale = yield* Effect.flip(store.appendToStreams([append(checked, [], 0), append(streamName("never"), events(1), "no_stream")]))
          assert.deepInclude(stale, { _tag: "WrongExpectedRevisions" })
          assert.deepStrictEqual(revisions(yield* store.readStream(checked)), [0, 1])
        }))

      it.effect("subscribes from a checkpoint: catches up, then follows live appends in order, once each", () =>
        Effect.gen(function*() {
          const store = yield* EventStore
          const stream = streamName("subscribed")
          const checkpoint = yield* store.appendToStream(stream, events(1), "no_stream")
          // enough history for several catch-up pages
          let revision = checkpoint.nextRevision
          for (let i = 0; i < 12; i++) {
            revision = (yield* store.appendToStream(stream, events(100), revision)).nextRevision
          }
          const expectedTotal = 1200 + 40
          const subscriber = yield* store.subscribeToAll({ after: checkpoint.position }).pipe(
            Stream.filter((e) => e.stream === stream),
            Stream.take(expectedTotal),
            Stream.runCollect,
            Effect.forkChild
          )
          // appends racing the catch-up, then live ones after a pause
          for (let i = 0; i < 20; i++) revision = (yield* store.appendToStream(stream, events(1), revision)).nextRevision
          yield* Effect.sleep("100 millis")
          for (let i = 0; i < 20; i++) revision = (yield* store.appendToStream(stream, events(1), revision)).nextRevision
          const received = yield* Fiber.join(subscriber).pipe(Effect.timeout("10 seconds"))
          assert.deepStrictEqual(revisions(received), Array.from({ length: expectedTotal }, (_, i) => i + 1))
          assertIncreasing(positions(received))
          assert.deepStrictEqual(ids(received), ids(yield* store.readStream(stream, { fromRevision: 1 })))
        }))

      it.effect("several subscriptions at different places, far behind or near the head, each get every event after their own checkpoint once, in order", () =>
        Effect.gen(function*() {
          const store = yield* EventStore
          const stream = streamName("shared")
          const base = (yield* store.appendToStream(streamName("before-shared"), events(1), "no_stream")).position
          // far more than a store may keep in memory for its subscriptions: 12,000 events in 12 commits
          let revision = -1
          for (let i = 0; i < 12; i++) {
            revision = (yield* store.appendToStream(stream, events(1_000), revision === -1 ? "no_stream" : revision)).nextRevision
          }
          const history = yield* store.readStream(stream)
          const follow = (start: number, count: number) =>
            store.subscribeToAll({ after: start === 0 ? base : history[start - 1]!.position }).pipe(
              Stream.filter((e) => e.stream === stream),
              Stream.take(count),
              Stream.runCollect,
              Effect.forkChild
            )
          // from the start, from the middle and near the head, started together: they pass each other's places
          const starts = [0, 5_500, 11_000]
          const live = 300
          const followers = yield* Effect.forEach(starts, (start) => follow(start, 12_000 - start + live))
          for (let i = 0; i < live; i++) revision = (yield* store.appendToStream(stream, events(1), revision)).nextRevision
          // a late one from the start, after the others have moved the shared events on
          const late = yield* follow(0, 12_000 + live)
          const all = yield* store.readStream(stream)
          for (const [i, fiber] of [...followers, late].entries()) {
            const start = i < starts.length ? starts[i]! : 0
            const received = yield* Fiber.join(fiber).pipe(Effect.timeout("30 seconds"))
            assert.deepStrictEqual(ids(received), ids(all.slice(start)), `the follower from ${start}`)
          }
        }))
    })
  })
