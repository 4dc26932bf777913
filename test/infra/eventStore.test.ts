import { randomUUID } from "node:crypto"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Context, Effect, Fiber, Layer, Stream } from "effect"
import { TestClock } from "effect/testing"
import { EventStore } from "../../domain/EventStore.ts"
import type { EventData } from "../../domain/EventStore.ts"
import { layerKurrent } from "../../infra/eventstore/kurrent.ts"
import { layerSqlite } from "../../infra/eventstore/sqlite.ts"
import { eventStoreSuite } from "./eventStoreSuite.ts"

const tempDatabase = () => join(mkdtempSync(join(tmpdir(), "tributary-eventstore-")), "events.db")
const event = (type: string, data: EventData["data"] = {}): EventData => ({ eventId: randomUUID(), type, data, metadata: {} })

eventStoreSuite("SQLite event store", layerSqlite({ path: tempDatabase() }))

const eventStoreUrl = process.env.EVENTSTORE_URL
if (eventStoreUrl !== undefined && eventStoreUrl !== "") {
  eventStoreSuite("KurrentDB event store", layerKurrent({ connectionString: eventStoreUrl }))
} else {
  it.skip("EVENTSTORE_URL not set: EventStoreDB cannot be installed here", () => {})
}

/** A separate store instance on `path`, as a second process would open it. */
const openStore = (path: string) =>
  Layer.build(layerSqlite({ path })).pipe(Effect.map(Context.get(EventStore)))

describe("SQLite event store file", () => {
  it.live("keeps appended events after the file is closed and reopened", () =>
    Effect.gen(function*() {
      const path = tempDatabase()
      const written = [event("Opened", { n: 1 }), event("Renamed", { name: "x" })]
      yield* Effect.scoped(Effect.flatMap(openStore(path), (store) => store.appendToStream("acct-1", written, "no_stream")))
      const reopened = yield* openStore(path)
      const recorded = yield* reopened.readStream("acct-1")
      assert.deepStrictEqual(recorded.map((e) => [e.eventId, e.data, e.revision]), written.map((e, i) => [e.eventId, e.data, i]))
      assert.strictEqual((yield* reopened.appendToStream("acct-1", [event("Closed")], 1)).nextRevision, 2)
      assert.strictEqual(yield* reopened.headPosition, 3)
    }))

  it.live("shows a subscriber in one process the appends made by another on the same file", () =>
    Effect.gen(function*() {
      const path = tempDatabase()
      const [reader, writer] = [yield* openStore(path), yield* openStore(path)]
      yield* writer.appendToStream("s-1", [event("Before")], "no_stream")
      const received = yield* reader.subscribeToAll().pipe(Stream.take(4), Stream.runCollect, Effect.forkChild)
      yield* Effect.sleep("60 millis") // the subscriber is now live, waiting on its poll
      yield* writer.appendToStream("s-1", [event("A"), event("B")], 0)
      yield* writer.appendToStream("s-2", [event("C")], "no_stream")
      const events = yield* Fiber.join(received).pipe(Effect.timeout("5 seconds"))
      assert.deepStrictEqual(events.map((e) => [e.type, e.position]), [["Before", 1], ["A", 2], ["B", 3], ["C", 4]])
    }))

  it.live("a subscription's catch-up pages hold at most ~4 MiB of events past their first (a page of 500 was 64 MB held for a slow follower)", () =>
    Effect.gen(function*() {
      const path = tempDatabase()
      const store = yield* openStore(path)
      const big = "x".repeat(1024 * 1024)
      for (let i = 0; i < 20; i++) yield* store.appendToStream(`big-${i}`, [event("Big", { big })], "no_stream")
      const pages = yield* store.subscribeToAll().pipe(Stream.take(20), Stream.chunks, Stream.runCollect)
      assert.deepStrictEqual(pages.flat().map((e) => e.position), Array.from({ length: 20 }, (_, i) => i + 1))
      for (const page of pages) assert.isAtMost(page.length, 4, `a page of ${page.length} events of 1 MiB`)
    }))

  it.live("checks the expected revision across processes sharing the file", () =>
    Effect.gen(function*() {
      const path = tempDatabase()
      const stores = [yield* openStore(path), yield* openStore(path)]
      const results = yield* Effect.forEach(stores, (store) => Effect.result(store.appendToStream("s-1", [event("First")], "no_stream")), {
        concurrency: "unbounded"
      })
      assert.deepStrictEqual(results.map((r) => r._tag).sort(), ["Failure", "Success"])
      assert.strictEqual((yield* stores[0]!.readStream("s-1")).length, 1)
    }))

  it.live("sees another process's appends before deciding on an expected revision", () =>
    Effect.gen(function*() {
      const path = tempDatabase()
      const [a, b] = [yield* openStore(path), yield* openStore(path)]
      yield* a.appendToStream("s-1", [event("First")], "no_stream") // a now knows the head: revision 0
      yield* b.appendToStream("s-1", [event("Second")], 0)
      const stale = yield* Effect.flip(a.appendToStream("s-1", [event("Third")], 0))
      assert.deepStrictEqual(stale._tag === "WrongExpectedRevision" ? stale.actual : stale._tag, 1)
      const next = yield* a.appendToStream("s-1", [event("Third")], 1)
      assert.strictEqual(next.nextRevision, 2)
    }))

  it.live("rolls back only the failing append of a batch committed together", () =>
    Effect.gen(function*() {
      const store = yield* openStore(tempDatabase())
      const taken = event("Taken")
      yield* store.appendToStream("other-1", [taken], "no_stream")
      const good = [event("Good"), event("Good")]
      const clash = [event("Fresh"), taken] // reuses an event id stored elsewhere: not a retry, an error
      const results = yield* Effect.all([
        Effect.result(store.appendToStream("s-1", good, "no_stream")),
        Effect.result(store.appendToStream("s-2", clash, "no_stream")),
        Effect.result(store.appendToStream("s-3", [event("Conflict")], 5)),
        Effect.result(store.appendToStream("s-4", good.map((e) => ({ ...e, eventId: randomUUID() })), "any"))
      ], { concurrency: "unbounded" })
      assert.deepStrictEqual(results.map((r) => r._tag === "Failure" ? r.failure._tag : "Success"), [
        "Success",
        "EventStoreError",
        "WrongExpectedRevision",
        "Success"
      ])
      assert.deepStrictEqual(yield* store.readStream("s-2"), [])
      assert.strictEqual((yield* store.readStream("s-1")).length, 2)
      assert.strictEqual((yield* store.readStream("s-4")).length, 2)
      assert.deepStrictEqual((yield* store.readAll()).map((e) => e.position), [1, 2, 3, 4, 5])
    }))

  it.live("commits a multi-append in the same transaction as other pending appends, rolling back only what fails", () =>
    Effect.gen(function*() {
      const commits: Array<number> = []
      const store = yield* Layer.build(layerSqlite({ path: tempDatabase(), onCommit: (n) => commits.push(n) })).pipe(
        Effect.map(Context.get(EventStore))
      )
      const taken = event("Taken")
      yield* store.appendToStream("other-1", [taken], "no_stream")
      commits.length = 0
      const results = yield* Effect.all([
        Effect.result(store.appendToStream("s-1", [event("Single")], "no_stream")),
        Effect.result(store.appendToStreams([
          { stream: "m-1", events: [event("A"), event("B")], expectedRevision: "no_stream" },
          { stream: "m-2", events: [event("C")], expectedRevision: "no_stream" }
        ])),
        Effect.result(store.appendToStreams([
          { stream: "c-1", events: [event("Fresh")], expectedRevision: "no_stream" },
          { stream: "c-2", events: [event("Stale")], expectedRevision: 3 }
        ])),
        // its second stream reuses an event id stored elsewhere: not a retry, an error
        Effect.result(store.appendToStreams([
          { stream: "e-1", events: [event("Fresh")], expectedRevision: "no_stream" },
          { stream: "e-2", events: [event("Fresh"), taken], expectedRevision: "no_stream" }
        ])),
        Effect.result(store.appendToStream("s-2", [event("Single")], "no_stream"))
      ], { concurrency: "unbounded" })
      assert.deepStrictEqual(results.map((r) => r._tag === "Failure" ? r.failure._tag : "Success"), [
        "Success",
        "Success",
        "WrongExpectedRevisions",
        "EventStoreError",
        "Success"
      ])
      assert.deepStrictEqual(commits, [5], "one transaction held everything that was pending")
      for (const stream of ["c-1", "c-2", "e-1", "e-2"]) assert.deepStrictEqual(yield* store.readStream(stream), [])
      assert.deepStrictEqual((yield* store.readAll()).map((e) => [e.stream, e.position]), [
        ["other-1", 1],
        ["s-1", 2],
        ["m-1", 3],
        ["m-1", 4],
        ["m-2", 5],
        ["s-2", 6]
      ])
      // the heads the rolled-back requests would have set are not remembered
      const after = yield* store.appendToStreams(["c-1", "e-1", "e-2"].map((stream) => ({ stream, events: [event("Later")], expectedRevision: "no_stream" as const })))
      assert.deepStrictEqual(after.map((r) => r.nextRevision), [0, 0, 0])
    }))

  it.live("checks a multi-append against another process's appends to the same file", () =>
    Effect.gen(function*() {
      const path = tempDatabase()
      const [a, b] = [yield* openStore(path), yield* openStore(path)]
      yield* a.appendToStreams([{ stream: "s-1", events: [event("First")], expectedRevision: "no_stream" }])
      yield* b.appendToStream("s-1", [event("Second")], 0)
      const stale = yield* Effect.flip(a.appendToStreams([
        { stream: "s-2", events: [event("Other")], expectedRevision: "no_stream" },
        { stream: "s-1", events: [event("Third")], expectedRevision: 0 }
      ]))
      assert.deepStrictEqual(stale._tag === "WrongExpectedRevisions" ? stale.conflicts.map((c) => c.actual) : stale._tag, [1])
      assert.deepStrictEqual(yield* b.readStream("s-2"), [])
      // a stream b never wrote (its heads cache knows nothing of it), expected absent, with no events: only a lookup can tell
      const c = yield* openStore(path)
      const exists = yield* Effect.flip(c.appendToStreams([
        { stream: "s-1", events: [], expectedRevision: "no_stream" },
        { stream: "s-3", events: [event("Other")], expectedRevision: "no_stream" }
      ]))
      assert.deepStrictEqual(exists._tag === "WrongExpectedRevisions" ? exists.conflicts.map((c) => [c.stream, c.actual]) : exists._tag, [["s-1", 1]])
      assert.deepInclude(yield* Effect.flip(c.appendToStream("s-1", [], "no_stream")), { _tag: "WrongExpectedRevision", actual: 1 })
    }))

  it.live("refuses a multi-append naming a stream twice, as a defect", () =>
    Effect.gen(function*() {
      const store = yield* openStore(tempDatabase())
      const exit = yield* Effect.exit(store.appendToStreams([
        { stream: "s-1", events: [event("A")], expectedRevision: "no_stream" },
        { stream: "s-1", events: [event("B")], expectedRevision: 0 }
      ]))
      assert.isTrue(exit._tag === "Failure" && exit.cause.reasons.some((r) => r._tag === "Die"))
      assert.deepStrictEqual(yield* store.readStream("s-1"), [])
    }))

  it.live("fails appends once the store has closed", () =>
    Effect.gen(function*() {
      const store = yield* Effect.scoped(openStore(tempDatabase()))
      const error = yield* Effect.flip(store.appendToStream("s-1", [event("Late")], "any"))
      assert.strictEqual(error._tag, "EventStoreError")
    }))

  it.live("never records a time before the newest recordedAt in the file: a clock set back, or another process's clock behind", () =>
    Effect.gen(function*() {
      const path = tempDatabase()
      // Each store reads time from its own clock, as two processes with their own wall clocks would.
      const [clockA, clockB] = [yield* TestClock.make(), yield* TestClock.make()]
      const storeA = yield* openStore(path).pipe(Effect.provideService(Clock.Clock, clockA))
      const storeB = yield* openStore(path).pipe(Effect.provideService(Clock.Clock, clockB))
      const at = (iso: string) => Date.parse(iso)

      yield* clockA.setTime(at("2030-01-01T00:00:10.000Z"))
      yield* storeA.appendToStream("s-1", [event("First")], "no_stream")
      yield* clockA.setTime(at("2030-01-01T00:00:00.000Z")) // the clock steps back 10 s
      yield* storeA.appendToStream("s-1", [event("Second")], 0)
      yield* storeA.appendToStreams([{ stream: "s-2", events: [event("Third")], expectedRevision: "no_stream" }])
      // another process whose clock is behind the newest event, appending to the same file
      yield* clockB.setTime(at("2030-01-01T00:00:05.000Z"))
      yield* storeB.appendToStream("s-3", [event("Fourth")], "no_stream")
      // time moves on past the newest: recorded as it is
      yield* clockB.setTime(at("2030-01-01T00:00:20.000Z"))
      yield* storeB.appendToStream("s-3", [event("Fifth")], 0)
      yield* clockA.setTime(at("2030-01-01T00:00:15.000Z"))
      yield* storeA.appendToStream("s-1", [event("Sixth")], 1)

      const all = yield* storeA.readAll()
      assert.deepStrictEqual(all.map((e) => [e.type, e.recordedAt]), [
        ["First", "2030-01-01T00:00:10.000Z"],
        ["Second", "2030-01-01T00:00:10.000Z"],
        ["Third", "2030-01-01T00:00:10.000Z"],
        ["Fourth", "2030-01-01T00:00:10.000Z"],
        ["Fifth", "2030-01-01T00:00:20.000Z"],
        ["Sixth", "2030-01-01T00:00:20.000Z"]
      ])
    }))
})
