import { assert, describe, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { Effect, Layer } from "effect"
import { layerSqlite as eventStore } from "../../../infra/eventstore/sqlite.ts"
import { brief, deliverChunks, deliverRecords } from "../../fixtures/deliverContents.ts"
import { createDestination } from "../../fixtures/destinationEvents.ts"
import { eventually } from "../../fixtures/http.ts"
import { layerTestNats, TestNatsServer } from "../../fixtures/nats.ts"
import { added, appendProfileEvents } from "../../fixtures/segmentEvents.ts"
import { tempDir } from "../../fixtures/tempDir.ts"

const packagesProcess = fileURLToPath(new URL("../../fixtures/packagesProcess.ts", import.meta.url))

const crashTest = (dir: string, events: string) =>
  Effect.gen(function*() {
    const { url, platform } = yield* TestNatsServer
    const start = (name: string) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          const child = spawn(process.execPath, ["--no-warnings", packagesProcess, url, events, join(dir, "delivery.db"), "2"], {
            stdio: ["ignore", "pipe", "pipe"],
            env: { ...process.env, NATS_USER: platform.user, NATS_PASSWORD: platform.password }
          })
          const keep = (chunk: Buffer) => writeFileSync(join(dir, `${name}.log`), chunk, { flag: "a" })
          child.stdout.on("data", keep)
          child.stderr.on("data", keep)
          return child
        }),
        (child) => Effect.sync(() => void child.kill("SIGKILL"))
      )
    // Each profile joins 200 segments in one event: 200 records, 100 chunks of 2, published one at a time.
    const segments = Array.from({ length: 200 }, (_, i) => String(1_000 + i))
    const profiles = (from: number, to: number) =>
      Effect.forEach(Array.from({ length: to - from }, (_, i) => from + i), (i) => appendProfileEvents(`cookie:u${i}`, added("a", segments)), { discard: true })
    const expected = Array.from({ length: 8 }, (_, u) => segments.map((s) => `u${u} ${s} add`)).flat()

    yield* createDestination("d-one", segments)
    yield* profiles(0, 4)
    const first = yield* start("first")
    yield* eventually(deliverChunks("d-one"), (cs) => cs.length > 0, "40 seconds")
    first.kill("SIGKILL")
    const atKill = (yield* deliverRecords("d-one")).length
    yield* profiles(4, 8)
    yield* start("second") // takes the lease once the killed holder's expires
    yield* eventually(deliverRecords("d-one"), (rs) => rs.length >= expected.length, "50 seconds")
    yield* Effect.sleep("1 second") // a duplicate would land now, if any
    const all = (yield* deliverRecords("d-one")).map(brief)
    assert.strictEqual(all.length, expected.length, `every record exactly once (${atKill} of ${expected.length} were on DELIVER at the kill)`)
    assert.deepStrictEqual(all, expected, "in commit order")
  })

describe("delivery packages across a crash", () => {
  it.live("every record once on DELIVER, in commit order, across a SIGKILL of the packaging process mid-way", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("packages-crash")
      const events = join(dir, "events.db")
      return yield* crashTest(dir, events).pipe(Effect.provide(Layer.mergeAll(eventStore({ path: events }), layerTestNats())))
    }).pipe(Effect.scoped), 90_000)
})
