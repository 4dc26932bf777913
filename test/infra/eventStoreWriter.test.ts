/**
 * The SQLite event store's writer thread: a commit that waits (here for another connection's write
 * lock, as it would for another process's, or for an fsync) leaves the main thread's event loop free,
 * and closing the store answers the batch in flight and fails what is still queued.
 */
import { execFile } from "node:child_process"
import { randomUUID } from "node:crypto"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { DatabaseSync } from "node:sqlite"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Fiber, Layer, Scope } from "effect"
import { EventStore } from "../../domain/EventStore.ts"
import type { EventData } from "../../domain/EventStore.ts"
import { layerSqlite } from "../../infra/eventstore/sqlite.ts"

const tempDatabase = () => join(mkdtempSync(join(tmpdir(), "tributary-writer-")), "events.db")
const event = (type: string): EventData => ({ eventId: randomUUID(), type, data: {}, metadata: {} })

const openStore = (path: string, scope: Scope.Scope) =>
  Layer.buildWithScope(layerSqlite({ path }), scope).pipe(Effect.map(Context.get(EventStore)))

/** Another connection holding the write lock (BEGIN IMMEDIATE) until `release`. */
const holdWriteLock = (path: string) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const db = new DatabaseSync(path)
      db.exec("BEGIN IMMEDIATE")
      return { release: () => db.isTransaction && db.exec("ROLLBACK") }
    }),
    (lock) => Effect.sync(() => lock.release())
  )

/** Resolves once a real timer on this thread has fired `count` times: only a free event loop gets there. */
const timerTicks = (count: number) =>
  Effect.callback<void>((resume) => {
    let ticks = 0
    const timer = setInterval(() => {
      if (++ticks === count) {
        clearInterval(timer)
        resume(Effect.void)
      }
    }, 5)
    return Effect.sync(() => clearInterval(timer))
  })

const script = fileURLToPath(new URL("./eventStoreScript.ts", import.meta.url))

describe("SQLite event store writer thread", () => {
  it.live("loads under Node's own type stripping and keeps a program alive until its appends are answered", () =>
    Effect.gen(function*() {
      const path = tempDatabase()
      const output = yield* Effect.callback<string, Error>((resume) => {
        execFile(process.execPath, ["--no-warnings", script, path], (error, stdout, stderr) =>
          resume(error === null ? Effect.succeed(stdout) : Effect.fail(new Error(`${error.message}\n${stderr}`))))
      })
      assert.deepStrictEqual(JSON.parse(output), ["A", "B"])
    }))

  it.live("keeps the event loop moving while a commit waits for another connection's write lock", () =>
    Effect.gen(function*() {
      const path = tempDatabase()
      const store = yield* openStore(path, yield* Effect.scope)
      yield* store.appendToStream("s-1", [event("Before")], "no_stream")
      const lock = yield* holdWriteLock(path)

      let settled = false
      const appending = yield* store.appendToStream("s-1", [event("Waited")], 0).pipe(
        Effect.ensuring(Effect.sync(() => (settled = true))),
        Effect.forkChild
      )
      // With the commit on the main thread, BEGIN IMMEDIATE would block this thread for the whole
      // busy_timeout (5 s): no timer could fire, and the append would then fail with SQLITE_BUSY.
      yield* timerTicks(20)
      assert.isFalse(settled, "the append is still waiting for the lock while the timers fire")

      lock.release()
      const appended = yield* Fiber.join(appending)
      assert.strictEqual(appended.nextRevision, 1)
      assert.deepStrictEqual((yield* store.readStream("s-1")).map((e) => e.type), ["Before", "Waited"])
    }))

  it.live("commits and answers the batch in flight when the store closes, and fails the appends still queued", () =>
    Effect.gen(function*() {
      const path = tempDatabase()
      const scope = yield* Scope.make()
      const store = yield* openStore(path, scope)
      yield* store.appendToStream("s-1", [event("Before")], "no_stream")
      const lock = yield* holdWriteLock(path)

      const inFlight = yield* Effect.forkChild(Effect.result(store.appendToStream("s-1", [event("InFlight")], 0)))
      yield* timerTicks(20) // the writer has taken it and waits for the lock; the next append queues behind it
      const queued = yield* Effect.forkChild(Effect.result(store.appendToStream("s-2", [event("Queued")], "no_stream")))
      yield* timerTicks(5)
      const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
      yield* timerTicks(20)
      lock.release()
      yield* Fiber.join(closing)

      const [first, second] = [yield* Fiber.join(inFlight), yield* Fiber.join(queued)]
      assert.strictEqual(first._tag, "Success", "the batch in flight was committed and answered")
      assert.deepInclude(second, { _tag: "Failure" })
      if (second._tag === "Failure") assert.strictEqual(second.failure._tag, "EventStoreError")

      const reopened = yield* openStore(path, yield* Effect.scope)
      assert.deepStrictEqual((yield* reopened.readStream("s-1")).map((e) => e.type), ["Before", "InFlight"])
      assert.deepStrictEqual(yield* reopened.readStream("s-2"), [])
    }))
})
