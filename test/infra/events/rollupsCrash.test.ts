import { assert, layer } from "@effect/vitest"
import { type ChildProcess, spawn } from "node:child_process"
import { join } from "node:path"
import { DatabaseSync } from "node:sqlite"
import { fileURLToPath } from "node:url"
import { Effect, Schedule } from "effect"
import { StreamNames } from "../../../domain/subjects.ts"
import { runRollupConsumers } from "../../../infra/events/rollupConsumer.ts"
import { layerSqlite as rollupStore } from "../../../infra/readmodel/rollups.ts"
import { keepMinutes } from "../../../projections/events/rollupBuckets.ts"
import { cleanEvent, publishClean } from "../../fixtures/appEvents.ts"
import { eventually } from "../../fixtures/http.ts"
import { layerTestNats, TestNatsServer } from "../../fixtures/nats.ts"
import { tempDir } from "../../fixtures/tempDir.ts"

const rollupsProcess = fileURLToPath(new URL("../../fixtures/rollupsProcess.ts", import.meta.url))

const killAndWait = (child: ChildProcess) =>
  Effect.callback<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    child.once("exit", () => resume(Effect.void))
    child.kill("SIGKILL")
  })

/** The checkpoint as another process sees it in the file. */
const checkpointIn = (path: string) =>
  Effect.sync(() => {
    let db: DatabaseSync | undefined
    try {
      db = new DatabaseSync(path, { readOnly: true, timeout: 5_000 })
      return (db.prepare("SELECT seq FROM rollup_checkpoints WHERE stream = ?").get(StreamNames.eventsClean) as { seq: number } | undefined)?.seq ?? 0
    } catch {
      return 0 // the file or its tables do not exist yet
    } finally {
      db?.close()
    }
  })

/** Per minute: events, and distinct devices, from the rollups file. */
const rollupTotals = (path: string) =>
  Effect.sync(() => {
    const db = new DatabaseSync(path, { readOnly: true })
    try {
      const events = db.prepare("SELECT minute, SUM(events) AS n FROM rollup_events GROUP BY minute ORDER BY minute").all()
      const devices = db.prepare("SELECT minute, COUNT(DISTINCT device) AS n FROM rollup_devices GROUP BY minute ORDER BY minute").all()
      return { events: events.map((r) => [r.minute, r.n]), devices: devices.map((r) => [r.minute, r.n]) }
    } finally {
      db.close()
    }
  })

const T0 = Date.parse("2026-11-28T10:00:00.000Z")

layer(layerTestNats(), { excludeTestServices: true, timeout: 90_000 })("rollups after a SIGKILL", (it) => {
  it.effect("count every event once when the consumer process is killed mid-stream and started again", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("rollups-crash")
      const path = join(dir, "rollups.db")
      const events = Array.from({ length: 6_000 }, (_, i) => cleanEvent("5", `d${i % 700}`, i, new Date(T0 + (i % 20) * 60_000 + (i % 59) * 1_000).toISOString()))
      yield* publishClean(events)
      const { url, platform } = yield* TestNatsServer

      const killedAt = yield* Effect.scoped(Effect.gen(function*() {
        const child = yield* Effect.acquireRelease(
          Effect.sync(() => spawn(process.execPath, ["--no-warnings", rollupsProcess, url, platform.user, platform.password, path, "50"], { stdio: ["ignore", "ignore", "inherit"] })),
          killAndWait
        )
        // killed once it has committed some batches, however long a loaded machine takes to start it
        yield* checkpointIn(path).pipe(
          Effect.flatMap((seq) => seq > 0 ? Effect.succeed(seq) : Effect.fail("not yet" as const)),
          Effect.retry(Schedule.spaced("5 millis").pipe(Schedule.upTo({ times: 12_000 })))
        )
        yield* killAndWait(child)
        return yield* checkpointIn(path)
      }))
      assert.isBelow(killedAt, events.length, "killed before it had caught up")

      // started again (here, in this process), it resumes after its checkpoint
      yield* Effect.scoped(Effect.gen(function*() {
        yield* Effect.forkScoped(runRollupConsumers({ batchSize: 500 }).pipe(Effect.provide(rollupStore({ path, tiers: keepMinutes }))))
        yield* eventually(checkpointIn(path), (seq) => seq === events.length, "60 seconds")
      }))

      // equal to a brute-force recount of the distinct events
      const expectedEvents = new Map<number, number>()
      const expectedDevices = new Map<number, Set<string>>()
      for (const e of events) {
        const minute = Math.floor(Date.parse(e.time) / 60_000)
        expectedEvents.set(minute, (expectedEvents.get(minute) ?? 0) + 1)
        expectedDevices.set(minute, (expectedDevices.get(minute) ?? new Set()).add(e.deviceId))
      }
      const sorted = <A>(m: Map<number, A>, f: (a: A) => number) => [...m].sort(([a], [b]) => a - b).map(([k, v]) => [k, f(v)])
      assert.deepStrictEqual(yield* rollupTotals(path), {
        events: sorted(expectedEvents, (n) => n),
        devices: sorted(expectedDevices, (s) => s.size)
      })
    }))
})
