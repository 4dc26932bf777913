import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Context, Effect, Exit, Fiber, Layer, Metric, Option, Scope, Stream, SubscriptionRef } from "effect"
import { TestClock } from "effect/testing"
import { reminderMetrics, runReminders } from "../../../actors/runtime/ReminderScheduler.ts"
import type { ReminderSchedulerOptions } from "../../../actors/runtime/ReminderScheduler.ts"
import { Reminders } from "../../../domain/Reminders.ts"
import type { Reminder } from "../../../domain/Reminders.ts"
import { shardOf } from "../../../domain/shards.ts"
import { layerSqlite } from "../../../infra/reminders/sqlite.ts"
import { tempDir } from "../../fixtures/tempDir.ts"

const shards = 64
const allShards = Array.from({ length: shards }, (_, i) => i)
const reminder = (entityId: string, dueAt: number): Reminder =>
  ({ entityType: "session", entityId, shard: shardOf(entityId, shards), dueAt })

/** A store on `path` as one process opens it (a real SQLite file), open until `scope` closes. */
const openStore = (path: string, scope?: Scope.Scope) => {
  const build = Layer.build(Layer.fresh(layerSqlite({ path })))
  return Effect.map(scope === undefined ? build : Scope.provide(build, scope), Context.get(Reminders))
}
const databaseIn = Effect.map(tempDir("reminder-scheduler"), (dir) => join(dir, "reminders.db"))

/** What `fire` was handed, when (TestClock ms) and by which scheduler. */
interface Firing { readonly by: string; readonly entityId: string; readonly dueAt: number; readonly at: number }
const recorder = (log: Array<Firing>, by: string) => (r: Reminder) =>
  Effect.map(Clock.currentTimeMillis, (at) => void log.push({ by, entityId: r.entityId, dueAt: r.dueAt, at }))
const seen = (log: ReadonlyArray<Firing>) => log.map((f) => `${f.by}:${f.entityId}@${f.dueAt}/${f.at}`)

/** Lets every fiber run what it can without time passing (SQLite calls are synchronous). */
const settle = Effect.gen(function*() {
  for (let i = 0; i < 200; i++) yield* Effect.yieldNow
})
/** Lets fibers run until `done` holds (a long run of batches takes many turns). */
const settleUntil = (done: () => boolean) =>
  Effect.gen(function*() {
    for (let i = 0; i < 1_000_000 && !done(); i++) yield* Effect.yieldNow
  })
const advance = (duration: Parameters<typeof TestClock.adjust>[0]) => TestClock.adjust(duration).pipe(Effect.andThen(settle))

/** Starts a scheduler on `store`; it runs until the test ends or it is interrupted. */
const start = <E>(store: Reminders["Service"], options: ReminderSchedulerOptions<E, never>) =>
  runReminders(options).pipe(Effect.provideService(Reminders, store), Effect.forkChild, Effect.tap(() => settle))

describe("ReminderScheduler", () => {
  it.effect("fires a reminder at its instant, not before, and marks it fired", () =>
    Effect.gen(function*() {
      const store = yield* openStore(yield* databaseIn)
      const log: Array<Firing> = []
      const before = (yield* Metric.value(reminderMetrics.fired)).count
      yield* store.set(reminder("s1", 10_000))
      yield* start(store, { shards: Stream.make(allShards), fire: recorder(log, "p") })
      yield* advance(9_999)
      assert.deepStrictEqual(log, [])
      yield* advance(1)
      assert.deepStrictEqual(seen(log), ["p:s1@10000/10000"])
      assert.deepStrictEqual(yield* store.next(allShards), Option.none())
      assert.strictEqual((yield* Metric.value(reminderMetrics.fired)).count - before, 1)
      yield* advance("1 minute")
      assert.strictEqual(log.length, 1, "fired once")
    }))

  it.effect("fires a replaced reminder at its new time only, and a cancelled one never", () =>
    Effect.gen(function*() {
      const store = yield* openStore(yield* databaseIn)
      const log: Array<Firing> = []
      yield* start(store, { shards: Stream.make(allShards), fire: recorder(log, "p") })
      yield* store.set(reminder("later", 10_000))
      yield* store.set(reminder("later", 20_000))
      yield* store.set(reminder("sooner", 30_000))
      yield* store.set(reminder("sooner", 5_000))
      yield* store.set(reminder("cancelled", 8_000))
      yield* store.cancel("session", "cancelled")
      yield* advance("1 minute")
      assert.deepStrictEqual(seen(log), ["p:sooner@5000/5000", "p:later@20000/20000"])
    }))

  it.effect("wakes early for a nearer reminder set while it sleeps until a later one", () =>
    Effect.gen(function*() {
      const store = yield* openStore(yield* databaseIn)
      const log: Array<Firing> = []
      yield* store.set(reminder("far", 2 * 3_600_000))
      // Polling once a day: only the wake-up on `set` can fire the near one in time.
      yield* start(store, { shards: Stream.make(allShards), fire: recorder(log, "p"), pollInterval: "1 day" })
      yield* advance("1 minute")
      yield* store.set(reminder("near", 70_000))
      yield* settle
      yield* advance("10 seconds")
      assert.deepStrictEqual(seen(log), ["p:near@70000/70000"])
      yield* advance("2 hours")
      assert.deepStrictEqual(seen(log), ["p:near@70000/70000", "p:far@7200000/7200000"])
    }))

  it.effect("fires every due reminder in due order, in bounded batches", () =>
    Effect.gen(function*() {
      const store = yield* openStore(yield* databaseIn)
      const log: Array<Firing> = []
      const count = 300
      // Due times out of order, some shared, all within the first 5 seconds.
      const due = Array.from({ length: count }, (_, i) => ({ id: `r${i}`, at: (i * 7_919) % 5_000 }))
      yield* Effect.forEach(due, ({ at, id }) => store.set(reminder(id, at)), { concurrency: "unbounded", discard: true })
      yield* advance("5 seconds")
      yield* start(store, { shards: Stream.make(allShards), fire: recorder(log, "p"), batchSize: 64, concurrency: 1 })
      yield* settleUntil(() => log.length >= count)
      assert.strictEqual(log.length, count)
      const times = log.map((f) => f.dueAt)
      assert.deepStrictEqual(times, [...times].sort((a, b) => a - b))
      assert.deepStrictEqual(new Set(log.map((f) => f.entityId)).size, count)
      yield* settle
      assert.deepStrictEqual(yield* store.next(allShards), Option.none())
    }))

  it.effect("retries a failing fire with backoff, without holding up other reminders or losing it", () =>
    Effect.gen(function*() {
      const store = yield* openStore(yield* databaseIn)
      const log: Array<Firing> = []
      const attempts: Array<number> = []
      const record = recorder(log, "p")
      const before = (yield* Metric.value(reminderMetrics.fireFailures)).count
      const fire = (r: Reminder) =>
        r.entityId !== "flaky"
          ? record(r)
          : Effect.gen(function*() {
            attempts.push(yield* Clock.currentTimeMillis)
            if (attempts.length <= 3) return yield* Effect.fail("the bus is down")
            yield* record(r)
          })
      yield* store.set(reminder("flaky", 10_000))
      yield* store.set(reminder("steady", 10_000))
      yield* store.set(reminder("after", 10_500))
      yield* start(store, { shards: Stream.make(allShards), fire })
      yield* advance("10 seconds")
      assert.deepStrictEqual(seen(log), ["p:steady@10000/10000"])
      yield* advance(500)
      assert.deepStrictEqual(seen(log), ["p:steady@10000/10000", "p:after@10500/10500"], "the failing one holds up no other")
      assert.deepStrictEqual(yield* store.next(allShards), Option.some(11_000), "the retry is in the store")
      yield* advance("1 minute")
      assert.deepStrictEqual(attempts, [10_000, 11_000, 12_000, 14_000])
      assert.deepStrictEqual(seen(log).at(-1), "p:flaky@10000/14000", "fired with its original due time")
      assert.strictEqual((yield* Metric.value(reminderMetrics.fireFailures)).count - before, 3)
      assert.deepStrictEqual(yield* store.next(allShards), Option.none())
    }))

  it.effect("counts a fire that does not answer in time as failed, and retries it", () =>
    Effect.gen(function*() {
      const store = yield* openStore(yield* databaseIn)
      const log: Array<Firing> = []
      let calls = 0
      const record = recorder(log, "p")
      const fire = (r: Reminder) => Effect.suspend(() => ++calls === 1 ? Effect.never : record(r))
      yield* store.set(reminder("slow", 1_000))
      yield* start(store, { shards: Stream.make(allShards), fire, fireTimeout: "5 seconds" })
      yield* advance("1 second")
      yield* advance("5 seconds") // timed out at 6 s, 5 s late: retried 5 s later
      yield* advance(4_999)
      assert.deepStrictEqual(log, [])
      yield* advance(1)
      assert.deepStrictEqual(seen(log), ["p:slow@1000/11000"])
    }))

  it.effect("survives a restart of the scheduler and a reopen of the store, firing again what was cut short", () =>
    Effect.gen(function*() {
      const path = yield* databaseIn
      const log: Array<Firing> = []
      const first = yield* Scope.make()
      const store = yield* openStore(path, first)
      yield* store.set(reminder("cut-short", 10_000))
      yield* store.set(reminder("later", 30_000))
      // The first process hands `cut-short` over, then stops before marking it fired (a crash).
      const hang = (r: Reminder) => recorder(log, "first")(r).pipe(Effect.andThen(Effect.never))
      const scheduler = yield* start(store, { shards: Stream.make(allShards), fire: hang })
      yield* advance("10 seconds")
      yield* Fiber.interrupt(scheduler)
      yield* Scope.close(first, Exit.void)

      const reopened = yield* openStore(path)
      yield* start(reopened, { shards: Stream.make(allShards), fire: recorder(log, "second") })
      yield* advance("20 seconds")
      assert.deepStrictEqual(seen(log), ["first:cut-short@10000/10000", "second:cut-short@10000/10000", "second:later@30000/30000"])
      assert.deepStrictEqual(yield* reopened.next(allShards), Option.none())
    }))

  it.effect("fires a shard's reminders only in the process owning it, and in the new owner once it moves", () =>
    Effect.gen(function*() {
      const path = yield* databaseIn
      const [storeA, storeB] = [yield* openStore(path), yield* openStore(path)] // two processes, one file
      const shard = shardOf("e1", shards)
      const others = allShards.filter((s) => s !== shard)
      const [ownedA, ownedB] = [yield* SubscriptionRef.make<ReadonlyArray<number>>([shard]), yield* SubscriptionRef.make(others)]
      const log: Array<Firing> = []
      yield* start(storeA, { shards: SubscriptionRef.changes(ownedA), fire: recorder(log, "A") })
      yield* start(storeB, { shards: SubscriptionRef.changes(ownedB), fire: recorder(log, "B") })

      yield* storeB.set(reminder("e1", 10_000)) // set through B; A finds it by polling
      yield* advance("10 seconds")
      assert.deepStrictEqual(seen(log), ["A:e1@10000/10000"])

      yield* storeA.set(reminder("e1", 20_000))
      yield* SubscriptionRef.set(ownedA, [])
      yield* SubscriptionRef.set(ownedB, allShards)
      yield* settle
      yield* advance("10 seconds")
      yield* storeA.set(reminder("e1", 25_000)) // set through A, which no longer owns the shard
      yield* advance("5 seconds")
      assert.deepStrictEqual(seen(log), ["A:e1@10000/10000", "B:e1@20000/20000", "B:e1@25000/25000"])
    }))
})
