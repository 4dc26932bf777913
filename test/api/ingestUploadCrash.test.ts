/**
 * An upload's 202 is a promise that survives the process: a real `api/main.ts` is SIGKILLed after one
 * file was answered and while another was still arriving; restarted on the same DATA_DIR, the first
 * file's job and bytes are there, and the second left no job and nothing in the partner's folder.
 */
import { assert, describe, it } from "@effect/vitest"
import { createHash } from "node:crypto"
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { request as httpRequest } from "node:http"
import { join } from "node:path"
import { Effect } from "effect"
import type { Job } from "../../domain/ingest/Job.ts"
import { eventually } from "../fixtures/http.ts"
import { startTestNatsServer } from "../fixtures/nats.ts"
import { call, startPlatformProcess, stopProcess, waitUntilReady, platformEnv } from "../fixtures/platformProcess.ts"
import { tempDir } from "../fixtures/tempDir.ts"

const ADMIN = "upload-crash-admin-key"

const files = (dir: string) =>
  existsSync(dir) ? readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(dir.length + 1)) : []

describe("uploads across a crash", () => {
  it.live("a file answered 202 is there after SIGKILL and restart; one cut off by the crash made no job", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir("upload-crash")
      const logs = yield* tempDir("upload-crash-logs")
      const nats = yield* startTestNatsServer
      const env = platformEnv(nats, dataDir, ADMIN, {
        UPLOAD_RETENTION: "keep"
      })
      const first = yield* startPlatformProcess(env, logs)
      yield* waitUntilReady(first)
      assert.strictEqual((yield* call(first.base, "PUT", "/v1/entities/partner/acme", { key: ADMIN, body: { name: "Acme" } })).status, 201)

      const file = Buffer.alloc(3 * 1024 * 1024, '{"idKind":"cookie","userId":"u1","segmentId":"1","op":"add","time":"2026-01-01T00:00:00Z"}\n')
      const stored = yield* Effect.promise(() => fetch(`${first.base}/v1/ingest/acme/files?fileName=a.jsonl`, {
        method: "POST", headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/x-ndjson" }, body: file
      }).then(async (r) => ({ status: r.status, body: await r.json() as { jobId: string; job: Job } })))
      assert.strictEqual(stored.status, 202)

      // A second file, half sent when the process dies.
      const { hostname, port } = new URL(first.base)
      const cut = httpRequest({ hostname, port, path: "/v1/ingest/acme/files?fileName=b.jsonl", method: "POST", headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/x-ndjson" } })
      cut.on("error", () => undefined)
      cut.write(file)
      yield* eventually(Effect.sync(() => files(join(dataDir, "uploads", ".incoming"))), (temp) => temp.length === 1, "30 seconds")
      yield* stopProcess(first, "SIGKILL")
      cut.destroy()

      const second = yield* startPlatformProcess(env, logs)
      yield* waitUntilReady(second)
      const job = yield* call(second.base, "GET", `/v1/ingest/jobs/${stored.body.jobId}`, { key: ADMIN })
      assert.strictEqual(job.status, 200, job.text)
      assert.deepInclude(job.body as Job, { partner: "acme", bytes: file.length, digest: createHash("sha256").update(file).digest("hex"), fileName: "a.jsonl" })
      const listed = yield* call(second.base, "GET", "/v1/ingest/acme/jobs", { key: ADMIN })
      assert.deepStrictEqual((listed.body as { jobs: Array<Job> }).jobs.map((j) => j.id), [stored.body.jobId])
      // The partner's folder holds the first file only, whole.
      const kept = files(join(dataDir, "uploads", "acme"))
      assert.strictEqual(kept.length, 1)
      assert.isTrue(readFileSync(join(dataDir, "uploads", "acme", kept[0]!)).equals(file))
      yield* stopProcess(second, "SIGTERM")
    }), 180_000)
})
