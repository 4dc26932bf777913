/**
 * The Reminders contract, run against every implementation (SQLite today; a JetStream KV store for
 * several machines later). Every test uses its own entity type and shards, so the suite also runs
 * against a store other tests share.
 */
import { randomInt, randomUUID } from "node:crypto"
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Fiber, Option, Stream } from "effect"
import type { Layer } from "effect"
import { Reminders } from "../../domain/Reminders.ts"
import type { Reminder } from "../../domain/Reminders.ts"

const freshType = () => `t${randomUUID().slice(0, 8)}`
const freshShards = (n: number) => {
  const first = randomInt(1_000_000, 2_000_000_000)
  return Array.from({ length: n }, (_, i) => first + i)
}
const ids = (reminders: ReadonlyArray<Reminder>) => reminders.map((r) => `${r.entityId}@${r.dueAt}`)
/** The reminders without the tokens the store drew, after checking each has one. */
const untokened = (reminders: ReadonlyArray<Reminder>) =>
  reminders.map(({ token, ...rest }) => {
    assert.isTrue(Number.isSafeInteger(token), `a token drawn by the store: ${token}`)
    return rest
  })

export const remindersSuite = <E>(name: string, storeLayer: Layer.Layer<Reminders, E>) =>
  describe(name, () => {
    layer(storeLayer, { excludeTestServices: true, timeout: "60 seconds" })((it) => {
      it.effect("finds a reminder due at or after its instant, not before, and its instant as the next one", () =>
        Effect.gen(function*() {
          const store = yield* Reminders
          const entityType = freshType()
          const [shard] = freshShards(1)
          yield* store.set({ entityType, entityId: "e1", shard: shard!, dueAt: 10_000 })
          assert.deepStrictEqual(yield* store.due([shard!], 9_999, 10), [])
          assert.deepStrictEqual(untokened(yield* store.due([shard!], 10_000, 10)), [{ entityType, entityId: "e1", shard: shard!, dueAt: 10_000 }])
          assert.deepStrictEqual(ids(yield* store.due([shard!], 50_000, 10)), ["e1@10000"])
          assert.deepStrictEqual(yield* store.next([shard!]), Option.some(10_000))
        }))

      it.effect("keeps one reminder per entity: setting it again replaces it, earlier or later", () =>
        Effect.gen(function*() {
          const store = yield* Reminders
          const entityType = freshType()
          const [shard] = freshShards(1)
          yield* store.set({ entityType, entityId: "e1", shard: shard!, dueAt: 10_000 })
          yield* store.set({ entityType, entityId: "e1", shard: shard!, dueAt: 20_000 })
          assert.deepStrictEqual(yield* store.due([shard!], 15_000, 10), [])
          assert.deepStrictEqual(ids(yield* store.due([shard!], 30_000, 10)), ["e1@20000"])
          yield* store.set({ entityType, entityId: "e1", shard: shard!, dueAt: 5_000 })
          assert.deepStrictEqual(ids(yield* store.due([shard!], 30_000, 10)), ["e1@5000"])
          assert.deepStrictEqual(yield* store.next([shard!]), Option.some(5_000))
        }))

      it.effect("tells entities apart by type and id", () =>
        Effect.gen(function*() {
          const store = yield* Reminders
          const [a, b] = [freshType(), freshType()]
          const [shard] = freshShards(1)
          yield* store.set({ entityType: a, entityId: "e1", shard: shard!, dueAt: 1_000 })
          yield* store.set({ entityType: b, entityId: "e1", shard: shard!, dueAt: 2_000 })
          yield* store.set({ entityType: a, entityId: "e2", shard: shard!, dueAt: 3_000 })
          const due = yield* store.due([shard!], 5_000, 10)
          assert.deepStrictEqual(due.map((r) => [r.entityType, r.entityId, r.dueAt]), [[a, "e1", 1_000], [b, "e1", 2_000], [a, "e2", 3_000]])
        }))

      it.effect("cancels an entity's reminder, and cancelling none is harmless", () =>
        Effect.gen(function*() {
          const store = yield* Reminders
          const entityType = freshType()
          const [shard] = freshShards(1)
          yield* store.set({ entityType, entityId: "e1", shard: shard!, dueAt: 10_000 })
          yield* store.set({ entityType, entityId: "e2", shard: shard!, dueAt: 10_000 })
          yield* store.cancel(entityType, "e1")
          yield* store.cancel(entityType, "never-set")
          assert.deepStrictEqual(ids(yield* store.due([shard!], 20_000, 10)), ["e2@10000"])
        }))

      it.effect("reads only the given shards, earliest first across them, at most `limit`", () =>
        Effect.gen(function*() {
          const store = yield* Reminders
          const entityType = freshType()
          const [s1, s2, other] = freshShards(3)
          const plan: ReadonlyArray<readonly [string, number, number]> = [
            ["a", s1!, 5_000], ["b", s2!, 1_000], ["c", other!, 500], ["d", s1!, 3_000], ["e", s2!, 4_000], ["f", s1!, 90_000]
          ]
          for (const [entityId, shard, dueAt] of plan) yield* store.set({ entityType, entityId, shard, dueAt })
          assert.deepStrictEqual(ids(yield* store.due([s1!, s2!], 10_000, 10)), ["b@1000", "d@3000", "e@4000", "a@5000"])
          assert.deepStrictEqual(ids(yield* store.due([s2!, s1!], 10_000, 2)), ["b@1000", "d@3000"])
          assert.deepStrictEqual(ids(yield* store.due([other!], 10_000, 10)), ["c@500"])
          assert.deepStrictEqual(yield* store.next([s1!]), Option.some(3_000))
          assert.deepStrictEqual(yield* store.next([s1!, s2!]), Option.some(1_000))
          assert.deepStrictEqual(yield* store.due([], 10_000, 10), [])
          assert.deepStrictEqual(yield* store.next([]), Option.none())
          assert.deepStrictEqual(yield* store.next(freshShards(1)), Option.none())
        }))

      it.effect("removes a fired reminder, but not one the entity set again meanwhile", () =>
        Effect.gen(function*() {
          const store = yield* Reminders
          const entityType = freshType()
          const [shard] = freshShards(1)
          const first = { entityType, entityId: "e1", shard: shard!, dueAt: 10_000 }
          const other = { entityType, entityId: "e2", shard: shard!, dueAt: 10_000 }
          yield* store.set(first)
          yield* store.set(other)
          // fired as the scheduler does: the reminder as `due` read it
          const [firstDue, otherDue] = yield* store.due([shard!], 10_000, 10)
          yield* store.fired(otherDue!)
          assert.deepStrictEqual(ids(yield* store.due([shard!], 10_000, 10)), ["e1@10000"])
          yield* store.set({ ...first, dueAt: 60_000 }) // set again while `first` was being fired
          yield* store.fired(firstDue!)
          assert.deepStrictEqual(ids(yield* store.due([shard!], 90_000, 10)), ["e1@60000"])
          yield* store.fired(firstDue!) // firing twice (at least once) is harmless
          assert.deepStrictEqual(yield* store.next([shard!]), Option.some(60_000))
        }))

      it.effect("keeps a reminder set again for the same instant while the earlier one was fired: a setting of its own, with another token", () =>
        Effect.gen(function*() {
          const store = yield* Reminders
          const entityType = freshType()
          const [shard] = freshShards(1)
          const reminder = { entityType, entityId: "e1", shard: shard!, dueAt: 10_000 }
          yield* store.set(reminder)
          const [earlier] = yield* store.due([shard!], 10_000, 10)
          yield* store.set(reminder) // the entity needs waking at that instant again (a new membership due then)
          const [again] = yield* store.due([shard!], 10_000, 10)
          assert.notStrictEqual(again!.token, earlier!.token)
          yield* store.fired(earlier!)
          yield* store.postpone(earlier!, 50_000)
          assert.deepStrictEqual(yield* store.due([shard!], 10_000, 10), [again])
          yield* store.fired(again!)
          assert.deepStrictEqual(yield* store.next([shard!]), Option.none())
        }))

      it.effect("postpones a reminder's next attempt, keeping its due time, unless it was set again", () =>
        Effect.gen(function*() {
          const store = yield* Reminders
          const entityType = freshType()
          const [shard] = freshShards(1)
          yield* store.set({ entityType, entityId: "late", shard: shard!, dueAt: 10_000 })
          const late = (yield* store.due([shard!], 10_000, 10))[0]!
          yield* store.set({ entityType, entityId: "next", shard: shard!, dueAt: 12_000 })
          yield* store.postpone(late, 15_000)
          assert.deepStrictEqual(ids(yield* store.due([shard!], 14_999, 10)), ["next@12000"])
          assert.deepStrictEqual(yield* store.next([shard!]), Option.some(12_000))
          yield* store.cancel(entityType, "next")
          assert.deepStrictEqual(yield* store.next([shard!]), Option.some(15_000))
          assert.deepStrictEqual(yield* store.due([shard!], 15_000, 10), [late])
          yield* store.set({ ...late, dueAt: 11_000 })
          yield* store.postpone(late, 40_000) // a stale postpone: the entity has a new reminder
          assert.deepStrictEqual(ids(yield* store.due([shard!], 11_000, 10)), ["late@11000"])
          yield* store.postpone({ ...late, entityId: "gone" }, 40_000)
          assert.deepStrictEqual(ids(yield* store.due([shard!], 90_000, 10)), ["late@11000"])
        }))

      it.effect("streams the reminders set after the stream started", () =>
        Effect.gen(function*() {
          const store = yield* Reminders
          const entityType = freshType()
          const [shard] = freshShards(1)
          const seen = yield* store.changes.pipe(
            Stream.filter((r) => r.entityType === entityType),
            Stream.take(2),
            Stream.runCollect,
            Effect.forkChild({ startImmediately: true })
          )
          yield* Effect.yieldNow
          yield* store.set({ entityType, entityId: "e1", shard: shard!, dueAt: 1_000 })
          yield* store.cancel(entityType, "e1")
          yield* store.set({ entityType, entityId: "e2", shard: shard!, dueAt: 2_000 })
          assert.deepStrictEqual(ids(yield* Fiber.join(seen).pipe(Effect.timeout("5 seconds"))), ["e1@1000", "e2@2000"])
        }))

      it.effect("rejects a reminder whose due time is not a whole number of milliseconds", () =>
        Effect.gen(function*() {
          const store = yield* Reminders
          const entityType = freshType()
          const [shard] = freshShards(1)
          const error = yield* Effect.flip(store.set({ entityType, entityId: "e1", shard: shard!, dueAt: 1.5 }))
          assert.strictEqual(error._tag, "RemindersError")
          assert.deepStrictEqual(yield* store.next([shard!]), Option.none())
        }))
    })
  })
