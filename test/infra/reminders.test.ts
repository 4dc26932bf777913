import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { DatabaseSync } from "node:sqlite"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Option } from "effect"
import { Reminders } from "../../domain/Reminders.ts"
import { layerSqlite } from "../../infra/reminders/sqlite.ts"
import { sql } from "../../infra/reminders/sqliteStatements.ts"
import { tempDir } from "../fixtures/tempDir.ts"
import { remindersSuite } from "./remindersSuite.ts"

remindersSuite("SQLite reminders", layerSqlite({ path: join(mkdtempSync(join(tmpdir(), "tributary-reminders-")), "reminders.db") }))

/** A store instance on `path`, as one process opens it, open until the test's scope closes. */
const openStore = (path: string) => Effect.map(Layer.build(Layer.fresh(layerSqlite({ path }))), Context.get(Reminders))
const databaseIn = Effect.map(tempDir("reminders"), (dir) => join(dir, "reminders.db"))

describe("SQLite reminders file", () => {
  it.live("keeps reminders after the file is closed and reopened", () =>
    Effect.gen(function*() {
      const path = yield* databaseIn
      yield* Effect.scoped(Effect.flatMap(openStore(path), (store) =>
        Effect.all([
          store.set({ entityType: "session", entityId: "s1", shard: 3, dueAt: 5_000 }),
          store.set({ entityType: "session", entityId: "s2", shard: 3, dueAt: 6_000 })
        ], { concurrency: "unbounded" })))
      const reopened = yield* openStore(path)
      assert.deepStrictEqual((yield* reopened.due([3], 10_000, 10)).map((r) => r.entityId), ["s1", "s2"])
    }))

  it.live("shares reminders between processes on the same file", () =>
    Effect.gen(function*() {
      const path = yield* databaseIn
      const [a, b] = [yield* openStore(path), yield* openStore(path)]
      yield* a.set({ entityType: "session", entityId: "s1", shard: 1, dueAt: 5_000 })
      assert.deepStrictEqual(yield* b.next([1]), Option.some(5_000))
      const [due] = yield* b.due([1], 5_000, 1)
      yield* b.fired(due!)
      assert.deepStrictEqual(yield* a.next([1]), Option.none())
    }))

  it.live("opens a file from before tokens: its reminders are due without one and fire away, new ones get one", () =>
    Effect.gen(function*() {
      const path = yield* databaseIn
      const old = new DatabaseSync(path)
      old.exec(`CREATE TABLE reminders (entity_type TEXT NOT NULL, entity_id TEXT NOT NULL, shard INTEGER NOT NULL, due_at INTEGER NOT NULL,
          attempt_at INTEGER NOT NULL, PRIMARY KEY (entity_type, entity_id)) WITHOUT ROWID;
        CREATE INDEX reminders_by_shard_attempt ON reminders (shard, attempt_at, due_at);
        INSERT INTO reminders VALUES ('session', 'before', 1, 5000, 5000);`)
      old.close()
      const store = yield* openStore(path)
      const [before] = yield* store.due([1], 5_000, 10)
      assert.deepStrictEqual(before, { entityType: "session", entityId: "before", shard: 1, dueAt: 5_000 })
      yield* store.fired(before!)
      assert.deepStrictEqual(yield* store.next([1]), Option.none())
      yield* store.set({ entityType: "session", entityId: "after", shard: 1, dueAt: 6_000 })
      const [after] = yield* store.due([1], 6_000, 10)
      assert.isTrue(Number.isSafeInteger(after!.token))
    }))

  it.live("fails writes once the store has closed", () =>
    Effect.gen(function*() {
      const store = yield* Effect.scoped(openStore(yield* databaseIn))
      const error = yield* Effect.flip(store.set({ entityType: "session", entityId: "s1", shard: 1, dueAt: 5_000 }))
      assert.strictEqual(error._tag, "RemindersError")
    }))

  it.live("reads only the due rows through the (shard, attempt) index, however many reminders are set", () =>
    Effect.gen(function*() {
      const path = yield* databaseIn
      const store = yield* openStore(path)
      const shards = 64
      const count = 100_000
      // Due one minute apart from an hour on, except every 10,000th, due within the first second.
      const dueAt = (i: number) => (i % 10_000 === 0 ? i / 100 : 3_600_000 + i * 60_000)
      yield* Effect.forEach(Array.from({ length: count }, (_, i) => i), (i) =>
        store.set({ entityType: "membership", entityId: `m${i}`, shard: i % shards, dueAt: dueAt(i) }), {
        concurrency: 2_048,
        discard: true
      })
      const all = Array.from({ length: shards }, (_, i) => i)
      const due = yield* store.due(all, 1_000, 1_000)
      assert.deepStrictEqual(due.map((r) => r.entityId), Array.from({ length: 10 }, (_, k) => `m${k * 10_000}`))
      assert.deepStrictEqual(yield* store.next(all), Option.some(0))

      // The plan SQLite chose on this very file: a range of the index, no table scan, no sort.
      const db = new DatabaseSync(path, { readOnly: true })
      yield* Effect.addFinalizer(() => Effect.sync(() => db.close()))
      const plan = (statement: string, ...params: Array<number>) =>
        db.prepare(`EXPLAIN QUERY PLAN ${statement}`).all(...params).map((row) => String(row.detail))
      assert.deepStrictEqual(plan(sql.due, 0, 1_000, 1_000), [
        "SEARCH reminders USING COVERING INDEX reminders_by_shard_attempt (shard=? AND attempt_at<?)"
      ])
      assert.deepStrictEqual(plan(sql.next, 0), ["SEARCH reminders USING COVERING INDEX reminders_by_shard_attempt (shard=?)"])
      assert.strictEqual((db.prepare("SELECT count(*) AS n FROM reminders").get() as { n: number }).n, count)
    }), { timeout: 120_000 })
})
