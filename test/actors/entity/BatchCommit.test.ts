import { assert, describe, it } from "@effect/vitest"
import { join } from "node:path"
import { Effect, Exit, Fiber, Layer } from "effect"
import { TestClock } from "effect/testing"
import * as BatchCommit from "../../../actors/entity/BatchCommit.ts"
import { type EventData, EventStore } from "../../../domain/EventStore.ts"
import { layerSqlite } from "../../../infra/eventstore/sqlite.ts"
import { tempDir } from "../../fixtures/tempDir.ts"

const store = Layer.unwrap(Effect.map(tempDir("batch-commit"), (dir) => layerSqlite({ path: join(dir, "events.db") })))

let n = 0
const event = (): EventData => ({ eventId: `00000000-0000-7000-8000-${String(++n).padStart(12, "0")}`, type: "Happened", data: { n }, metadata: {} })

describe("BatchCommit", () => {
  it.live("commits the events of every part in one transaction, once each part appended or skipped", () =>
    Effect.gen(function*() {
      const parts = yield* BatchCommit.make(4, "1 minute")
      const appends = yield* Effect.forEach(["a", "b", "c"], (stream, i) => Effect.forkChild(parts[i]!.append(`s-${stream}`, [event()], "no_stream")))
      // nothing is written while a part is still open
      yield* Effect.sleep("50 millis")
      assert.strictEqual((yield* (yield* EventStore).readAll()).length, 0)
      yield* parts[3]!.skip
      const results = yield* Effect.forEach(appends, Fiber.join)
      const stored = yield* (yield* EventStore).readAll()
      assert.deepStrictEqual(stored.map((e) => e.stream), ["s-a", "s-b", "s-c"])
      assert.deepStrictEqual(results.map((r) => r.position), stored.map((e) => e.position))
      // one transaction: one commit time for all three
      assert.strictEqual(new Set(stored.map((e) => e.recordedAt)).size, 1)
    }).pipe(Effect.provide(store)))

  it.live("fails only the conflicting part, and appends the others without it", () =>
    Effect.gen(function*() {
      const events = yield* EventStore
      yield* events.appendToStream("s-taken", [event()], "no_stream")
      const parts = yield* BatchCommit.make(3, "1 minute")
      const [ok1, conflict, ok2] = yield* Effect.forEach([
        parts[0]!.append("s-one", [event()], "no_stream"),
        parts[1]!.append("s-taken", [event()], "no_stream"),
        parts[2]!.append("s-two", [event()], "no_stream")
      ], (append) => Effect.forkChild(Effect.exit(append)))
      assert.isTrue(Exit.isSuccess(yield* Fiber.join(ok1!)))
      assert.isTrue(Exit.isSuccess(yield* Fiber.join(ok2!)))
      const failed = yield* Fiber.join(conflict!)
      assert.isTrue(Exit.isFailure(failed) && failed.cause.reasons.some((r) => r._tag === "Fail" && r.error._tag === "WrongExpectedRevision"))
      assert.deepStrictEqual((yield* events.readAll()).map((e) => e.stream), ["s-taken", "s-one", "s-two"])
    }).pipe(Effect.provide(store)))

  it.effect("commits what has arrived after its window; a part that comes later appends alone", () =>
    Effect.gen(function*() {
      const events = yield* EventStore
      const parts = yield* BatchCommit.make(2, "500 millis")
      const early = yield* Effect.forkChild(parts[0]!.append("s-early", [event()], "no_stream"))
      yield* TestClock.adjust("499 millis")
      assert.isUndefined(early.pollUnsafe())
      yield* TestClock.adjust("1 millis")
      const first = yield* Fiber.join(early)
      const late = yield* parts[1]!.append("s-late", [event()], "no_stream")
      assert.isAbove(late.position, first.position)
      assert.deepStrictEqual((yield* events.readAll()).map((e) => e.stream), ["s-early", "s-late"])
    }).pipe(Effect.provide(store)))

  it.live("writes nothing when every part skips", () =>
    Effect.gen(function*() {
      const parts = yield* BatchCommit.make(2, "1 minute")
      yield* parts[0]!.skip
      yield* parts[0]!.skip // idempotent: still one part open
      yield* parts[1]!.skip
      assert.strictEqual((yield* (yield* EventStore).readAll()).length, 0)
    }).pipe(Effect.provide(store)))
})
