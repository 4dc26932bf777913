/**
 * A SQLite thread's supervision (infra/sqliteThread.ts) with real worker threads on a real file: a
 * thread that dies after opening its file (an uncaught error in its handler) fails the request in
 * flight, refuses requests for a second after its start, then is replaced by a new thread at the next
 * request, which finds what the dead one committed. Before, every request after a thread's death was
 * answered `failed` until the process restarted.
 */
import { join } from "node:path"
import { assert, it } from "@effect/vitest"
import { Effect, Schedule } from "effect"
import { startSqliteThread } from "../../infra/sqliteThread.ts"
import type { CrashingAnswer, CrashingRequest } from "../fixtures/crashingSqliteThread.ts"
import { tempDir } from "../fixtures/tempDir.ts"

const threadFile = new URL("../fixtures/crashingSqliteThread.ts", import.meta.url)

it.live("a thread that died is started again at the next request, on the same file", () =>
  Effect.gen(function*() {
    const path = join(yield* tempDir("sqlite-thread"), "t.db")
    const thread = yield* startSqliteThread<CrashingRequest, CrashingAnswer>(threadFile, { path }, {
      name: "the test's thread",
      failed: (cause) => ({ _tag: "Failed", cause })
    })
    yield* thread.opened
    const first = yield* thread.request({ value: "a" })
    assert.strictEqual(first._tag, "Done")
    assert.strictEqual(first._tag === "Done" && first.rows, 1)

    const crashed = yield* thread.request({ crash: true })
    assert.strictEqual(crashed._tag, "Failed")
    // within a second of its start, no restart: a thread dying at every request is not started in a loop
    const soon = yield* thread.request({ value: "b" })
    assert.strictEqual(soon._tag, "Failed")
    assert.match(soon._tag === "Failed" ? soon.cause.message : "", /died and was restarted less than a second ago|exited/)

    const later = yield* thread.request({ value: "c" }).pipe(
      Effect.filterOrFail((answer) => answer._tag === "Done", (answer) => new Error(JSON.stringify(answer))),
      Effect.retry(Schedule.spaced("200 millis").pipe(Schedule.upTo({ times: 25 })))
    )
    assert.strictEqual(later._tag, "Done")
    if (later._tag !== "Done" || first._tag !== "Done") return
    assert.notStrictEqual(later.threadId, first.threadId, "a new thread")
    assert.strictEqual(later.rows, 2, "the new thread reads what the dead one committed (a), and nothing of the refused request (b)")
  }).pipe(Effect.scoped), { timeout: 30_000 })
