import { assert, describe, it } from "@effect/vitest"
import { join } from "node:path"
import { Effect, Exit, Fiber, Layer } from "effect"
import { TestClock } from "effect/testing"
import * as BatchCommit from "../../../actors/entity/BatchCommit.ts"
import { type EventData, EventStore, type StreamAppend } from "../../../domain/EventStore.ts"
import { layerSqlite } from "../../../infra/eventstore/sqlite.ts"
import { tempDir } from "../../fixtures/tempDir.ts"

const store = Layer.unwrap(Effect.map(tempDir("batch-commit"), (dir) => layerSqlite({ path: join(dir, "events.db") })))

let n = 0
/** One stream's append, as a part hands it in. */
const one = (stream: string, expectedRevision: StreamAppend["expectedRevision"] = "no_stream"): ReadonlyArray<StreamAppend> => [{ stream, events: [event()], expectedRevision }]

const event = (): EventData => ({ eventId: `00000000-0000-7000-8000-${String(++n).padStart(12, "0")}`, type: "Happened", data: { n }, metadata: {} })

describe("BatchCommit", () => {
  it.live("commits the events of every part in one transaction, once each part appended or skipped", () =>
    Effect.gen(function*() {
      const parts = yield* BatchCommit.make(4, "1 minute")
      const appends = yield* Effect.forEach(["a", "b", "c"], (stream, i) => Effect.forkChild(parts[i]!.append(one(`s-${stream}`))))
      // nothing is written while a part is still open
      yield* Effect.sleep("50 millis")
      assert.strictEqual((yield* (yield* EventStore).readAll()).length, 0)
      yield* parts[3]!.skip
      const results = yield* Effect.forEach(appends, Fiber.join)
      const stored = yield* (yield* EventStore).readAll()
      assert.deepStrictEqual(stored.map((e) => e.stream), ["s-a", "s-b", "s-c"])
      assert.deepStrictEqual(results.map((r) => r[0]!.position), stored.map((e) => e.position))
      // one transaction: one commit time for all three
      assert.strictEqual(new Set(stored.map((e) => e.recordedAt)).size, 1)
    }).pipe(Effect.provide(store)))

  it.live("fails only the conflicting part, and appends the others without it", () =>
    Effect.gen(function*() {
      const events = yield* EventStore
      yield* events.appendToStream("s-taken", [event()], "no_stream")
      const parts = yield* BatchCommit.make(3, "1 minute")
      const [ok1, conflict, ok2] = yield* Effect.forEach([
        parts[0]!.append(one("s-one")),
        parts[1]!.append(one("s-taken")),
        parts[2]!.append(one("s-two"))
      ], (append) => Effect.forkChild(Effect.exit(append)))
      assert.isTrue(Exit.isSuccess(yield* Fiber.join(ok1!)))
      assert.isTrue(Exit.isSuccess(yield* Fiber.join(ok2!)))
      const failed = yield* Fiber.join(conflict!)
      assert.isTrue(Exit.isFailure(failed) && failed.cause.reasons.some((r) => r._tag === "Fail" && r.error._tag === "WrongExpectedRevisions"))
      assert.deepStrictEqual((yield* events.readAll()).map((e) => e.stream), ["s-taken", "s-one", "s-two"])
    }).pipe(Effect.provide(store)))

  it.effect("commits what has arrived after its window; a part that comes later appends alone", () =>
    Effect.gen(function*() {
      const events = yield* EventStore
      const parts = yield* BatchCommit.make(2, "500 millis")
      const early = yield* Effect.forkChild(parts[0]!.append(one("s-early")))
      yield* TestClock.adjust("499 millis")
      assert.isUndefined(early.pollUnsafe())
      yield* TestClock.adjust("1 millis")
      const first = yield* Fiber.join(early)
      const late = yield* parts[1]!.append(one("s-late"))
      assert.isAbove(late[0]!.position, first[0]!.position)
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

  it.live("parts that only check a stream, or only append to it unchecked, share a commit; a part writing what others check commits after them", () =>
    Effect.gen(function*() {
      const events = yield* EventStore
      yield* events.appendToStream("s-parent", [event()], "no_stream")
      const parts = yield* BatchCommit.make(3, "1 minute")
      const child = (stream: string): ReadonlyArray<StreamAppend> => [
        ...one(stream),
        { stream: "s-parent", events: [], expectedRevision: 0 },
        { stream: "s-index", events: [event()], expectedRevision: "any" }
      ]
      const results = yield* Effect.forEach([child("s-a"), child("s-b"), one("s-parent", 0)], (appends, i) => parts[i]!.append(appends), {
        concurrency: "unbounded"
      })
      assert.deepStrictEqual(results.map((r) => r.map((x) => x.nextRevision)), [[0, 0, 1], [0, 0, 1], [1]])
      const stored = yield* events.readAll()
      assert.deepStrictEqual(stored.map((e) => e.stream), ["s-parent", "s-a", "s-index", "s-index", "s-b", "s-parent"])
    }).pipe(Effect.provide(store)))

  for (const first of ["child", "parent"] as const) {
    it.live(`a child linked to a parent and the parent's deletion in one batch never both commit (${first} first)`, () =>
      Effect.gen(function*() {
        const events = yield* EventStore
        yield* events.appendToStream("s-parent", [event()], "no_stream")
        const parts = yield* BatchCommit.make(2, "1 minute")
        // the child checks the parent is still as read and links itself in the parent's index;
        // the parent's deletion checks its index is still as read (empty)
        const child: ReadonlyArray<StreamAppend> = [
          ...one("s-child"),
          { stream: "s-parent", events: [], expectedRevision: 0 },
          { stream: "s-index", events: [event()], expectedRevision: "any" }
        ]
        const deletion: ReadonlyArray<StreamAppend> = [...one("s-parent", 0), { stream: "s-index", events: [], expectedRevision: "no_stream" }]
        const order = first === "child" ? [child, deletion] : [deletion, child]
        const [won, lost] = yield* Effect.forEach(order, (appends, i) => Effect.exit(parts[i]!.append(appends)), { concurrency: "unbounded" })
        assert.isTrue(Exit.isSuccess(won!))
        const conflict = Exit.isFailure(lost!) ? lost.cause.reasons.find((r) => r._tag === "Fail")?.error : undefined
        assert.strictEqual(conflict?._tag, "WrongExpectedRevisions")
        assert.deepStrictEqual(conflict?._tag === "WrongExpectedRevisions" ? conflict.conflicts.map((c) => c.stream) : [], [first === "child" ? "s-index" : "s-parent"])
        const stored = (yield* events.readAll()).map((e) => e.stream)
        assert.deepStrictEqual(stored, first === "child" ? ["s-parent", "s-child", "s-index"] : ["s-parent", "s-parent"])
      }).pipe(Effect.provide(store)))
  }
})
