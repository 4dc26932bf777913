/**
 * Nothing lost, nothing applied twice (issue 7 item 8), with real processes: a platform process
 * (`api/main.ts`) is SIGKILLed in the middle of a file job, another is started on the same DATA_DIR
 * and nats-server; it takes the partner's translator once the dead one's lease expires, resumes the
 * job from its checkpoint, and ends it done. Every profile then holds exactly the one event its line
 * gave it, read from the event store's SQLite file.
 */
import { assert, describe, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { Effect, Layer } from "effect"
import { EventStore } from "../../domain/EventStore.ts"
import type { Job } from "../../domain/ingest/Job.ts"
import { profileId } from "../../domain/ingest/LoaderRecord.ts"
import { layerSqlite } from "../../infra/eventstore/sqlite.ts"
import { eventually } from "../fixtures/http.ts"
import { layerTestNats, TestNatsServer } from "../fixtures/nats.ts"
import { call, startPlatformProcess, stopProcess, waitUntilReady, platformEnv } from "../fixtures/platformProcess.ts"
import { tempDir } from "../fixtures/tempDir.ts"

const ADMIN = "crash-admin-key-0123456"
const PARTNER = "crashy"
const LINES = 3_000

const line = (i: number) => JSON.stringify({ idKind: "cookie", userId: `c-${i}`, segmentId: String(700 + (i % 4)), op: "add", time: "2026-11-01T10:00:00Z" })

const upload = (base: string, body: string) =>
  Effect.promise(async () => {
    const response = await fetch(`${base}/v1/ingest/${PARTNER}/files?format=loader`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/x-ndjson" },
      body
    })
    return { status: response.status, body: await response.json() as { jobId: string } }
  })

const jobOf = (base: string, id: string) =>
  Effect.map(call(base, "GET", `/v1/ingest/jobs/${id}`, { key: ADMIN }), (answer) => answer.status === 200 ? answer.body as Job : undefined)

describe("a platform process killed mid-job", () => {
  it.live("resumes the job in the next process from its checkpoint: done, reconciled, every profile with exactly its one event", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir("ingest-crash")
      yield* Effect.gen(function*() {
        const nats = yield* TestNatsServer
        const env = platformEnv(nats, dataDir, ADMIN, {
          SHARDS: "8",
          // small batches, one at a time, frequent checkpoints: the job is still running when it is killed
          TRANSLATE_BATCH_LINES: "50",
          TRANSLATE_IN_FLIGHT: "1",
          TRANSLATE_CHECKPOINT_LINES: "100"
        })
        const first = yield* startPlatformProcess(env, dataDir)
        yield* waitUntilReady(first)
        assert.strictEqual((yield* call(first.base, "PUT", `/v1/entities/partner/${PARTNER}`, { key: ADMIN, body: { name: "Crashy" } })).status, 201)

        const uploaded = yield* upload(first.base, Array.from({ length: LINES }, (_, i) => line(i + 1)).join("\n") + "\n")
        assert.strictEqual(uploaded.status, 202, JSON.stringify(uploaded.body))
        const jobId = uploaded.body.jobId
        // Killed once a checkpoint past the start is saved, well before the end.
        const atKill = yield* eventually(jobOf(first.base, jobId), (job) => job !== undefined && job.linesRead >= 300, "45 seconds")
        yield* stopProcess(first, "SIGKILL")
        assert.strictEqual(atKill!.state, "translating", JSON.stringify(atKill))
        assert.isBelow(atKill!.linesRead, LINES)

        const second = yield* startPlatformProcess(env, dataDir)
        yield* waitUntilReady(second)
        const done = yield* eventually(jobOf(second.base, jobId), (job) => job?.state === "done" || job?.state === "failed", "50 seconds")
        assert.strictEqual(done!.state, "done", JSON.stringify(done))
        assert.strictEqual(done!.linesRead, LINES)
        assert.strictEqual(done!.linesRejected, 0)
        assert.strictEqual(done!.recordsAccepted, LINES)
        assert.strictEqual(done!.recordsAccepted, done!.duplicates + done!.recordsCommitted)
        yield* stopProcess(second, "SIGTERM")
        // It went on from a checkpoint past the start, not from line 0.
        const resumedAt = /ingest job resumed.*?"fromLine":(\d+)/.exec(readFileSync(second.log, "utf8"))
        assert.isNotNull(resumedAt, "the second process did not resume the job")
        assert.isAtLeast(Number(resumedAt![1]), 300)

        // Every profile: one SegmentsAdded, of its line's segment, naming its line.
        const store = yield* EventStore
        const wrong: Array<string> = []
        for (let i = 1; i <= LINES; i++) {
          const events = yield* store.readStream(`userprofile-${profileId("cookie", `c-${i}`)}`)
          const data = events[0]?.data as { memberships?: Array<{ segmentId: string; source: { line: number } }> } | undefined
          const membership = data?.memberships?.[0]
          if (events.length !== 1 || membership?.segmentId !== String(700 + (i % 4)) || membership.source.line !== i) {
            wrong.push(`c-${i}: ${events.length} events ${JSON.stringify(events.map((e) => e.data))}`)
          }
        }
        assert.deepStrictEqual(wrong.slice(0, 5), [], `${wrong.length} profiles wrong`)
      }).pipe(Effect.provide(Layer.merge(layerTestNats(), layerSqlite({ path: join(dataDir, "events.db") }))))
    }).pipe(Effect.scoped), { timeout: 150_000 })
})
