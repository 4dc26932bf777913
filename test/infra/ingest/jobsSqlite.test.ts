import { assert, describe, it } from "@effect/vitest"
import { statSync } from "node:fs"
import { DatabaseSync } from "node:sqlite"
import { join } from "node:path"
import { Context, Effect, Layer, Option } from "effect"
import { IngestJobs, type JobCheckpoint, MAX_ERROR_CHARS, type NewJob, zeroCounts } from "../../../domain/ingest/Job.ts"
import { layerSqlite } from "../../../infra/ingest/jobsSqlite.ts"
import { tempDir } from "../../fixtures/tempDir.ts"

/** The ledger of one process on the shared file, open for the rest of the test. */
const open = (path: string) => Effect.map(Layer.build(Layer.fresh(layerSqlite({ path }))), (context) => Context.get(context, IngestJobs))

const newJob = (id: string, partner = "acme", digest = `d-${id}`): NewJob => ({
  id, partner, source: "http", uploadId: `${partner}/${id}`, bytes: 10, digest, fileName: `${id}.csv`, format: "partner"
})

const at = (line: number, extra: Partial<JobCheckpoint> = {}): JobCheckpoint => ({
  line, bytes: line * 10, counts: { ...zeroCounts, linesRead: line, recordsAccepted: line, recordsCommitted: line }, errors: [], ...extra
})

describe("ingestion jobs ledger", () => {
  it.effect("records a job `stored` once: creating it again returns it unchanged", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("jobs")
      const jobs = yield* open(join(dir, "ingest.db"))
      const job = yield* jobs.create(newJob("j1"))
      assert.deepInclude(job, { id: "j1", partner: "acme", source: "http", state: "stored", percent: 0, linesRead: 0, bytes: 10, digest: "d-j1", fileName: "j1.csv", errors: [] })
      yield* jobs.checkpoint("j1", at(3), 30)
      const again = yield* jobs.create({ ...newJob("j1"), bytes: 99 })
      assert.strictEqual(again.state, "translating")
      assert.strictEqual(again.bytes, 10)
      const record = Option.getOrThrow(yield* jobs.get("j1"))
      assert.strictEqual(record.uploadId, "acme/j1")
      assert.strictEqual(record.format, "partner")
      assert.deepStrictEqual(Option.map(record.checkpoint, (c) => c.line), Option.some(3))
      assert.isTrue(Option.isNone(yield* jobs.get("nope")))
      assert.strictEqual(statSync(join(dir, "ingest.db")).mode & 0o777, 0o600)
    }))

  it.effect("lists a partner's jobs newest first, in pages", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("jobs")
      const jobs = yield* open(join(dir, "ingest.db"))
      for (const id of ["a", "b", "c", "d", "e"]) yield* jobs.create(newJob(id))
      yield* jobs.create(newJob("other", "globex"))
      const first = yield* jobs.list("acme", { limit: 2 })
      assert.deepStrictEqual(first.map((j) => j.id), ["e", "d"])
      const second = yield* jobs.list("acme", { limit: 2, before: "d" })
      assert.deepStrictEqual(second.map((j) => j.id), ["c", "b"])
      assert.deepStrictEqual((yield* jobs.list("acme", { limit: 10, before: "b" })).map((j) => j.id), ["a"])
      assert.deepStrictEqual((yield* jobs.list("globex", { limit: 10 })).map((j) => j.id), ["other"])
      // Another partner's job as the cursor names nothing of this partner.
      assert.deepStrictEqual(yield* jobs.list("acme", { limit: 10, before: "other" }), [])
    }))

  it.effect("a finished job does not change any more; unfinished and done-by-digest find what a translator needs", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("jobs")
      const path = join(dir, "ingest.db")
      const jobs = yield* open(path)
      // A second process on the same file sees the same rows.
      const other = yield* open(path)
      yield* jobs.create(newJob("j1", "acme", "same"))
      yield* other.create(newJob("j2", "acme", "same"))
      yield* jobs.create(newJob("j3", "acme", "same"))
      assert.deepStrictEqual((yield* other.unfinished("acme")).map((r) => r.job.id), ["j1", "j2", "j3"])
      assert.isTrue(Option.isNone(yield* jobs.doneWithDigest("acme", "same")))
      yield* other.checkpoint("j1", at(2), 40)
      const errors = [{ line: 2, column: "segment", reason: "unknown segment code x" }]
      yield* jobs.finish("j1", { state: "done", checkpoint: at(4, { errors }) })
      yield* jobs.finish("j2", { state: "failed", checkpoint: at(1), failure: "truncated gzip at line 2" })
      const done = Option.getOrThrow(yield* other.get("j1")).job
      assert.deepInclude(done, { state: "done", percent: 100, linesRead: 4, recordsCommitted: 4 })
      assert.deepStrictEqual(done.errors, errors)
      assert.deepInclude(Option.getOrThrow(yield* other.get("j2")).job, { state: "failed", failure: "truncated gzip at line 2", linesRead: 1 })
      // Neither a late checkpoint nor another finish moves them.
      yield* jobs.checkpoint("j1", at(9), 50)
      yield* jobs.finish("j2", { state: "done", checkpoint: at(9) })
      assert.deepInclude(Option.getOrThrow(yield* jobs.get("j1")).job, { state: "done", linesRead: 4 })
      assert.deepInclude(Option.getOrThrow(yield* jobs.get("j2")).job, { state: "failed", linesRead: 1 })
      assert.deepStrictEqual((yield* jobs.unfinished("acme")).map((r) => r.job.id), ["j3"])
      assert.deepStrictEqual(Option.map(yield* other.doneWithDigest("acme", "same"), (j) => j.id), Option.some("j1"))
      assert.isTrue(Option.isNone(yield* other.doneWithDigest("globex", "same")))
    }))

  it.effect("keeps a failure of at most MAX_ERROR_CHARS, saying how long it was", () =>
    Effect.gen(function*() {
      // the fourth attack of stop 27: a header naming a column 16,000 times failed its job with a
      // 149 KB failure, and 31 such jobs made a partner's job list 4.65 MB
      const jobs = yield* open(join(yield* tempDir("jobs"), "ingest.db"))
      yield* jobs.create(newJob("j1"))
      const failure = `the input broke at line 1: ${"it names \"uid\" at columns 1 and 2 and 3 ".repeat(4_000)}`
      yield* jobs.finish("j1", { state: "failed", checkpoint: at(1), failure })
      const kept = Option.getOrThrow(yield* jobs.get("j1")).job.failure!
      assert.strictEqual(kept, `${failure.slice(0, MAX_ERROR_CHARS)}… (${failure.length} characters)`)
    }))

  it.effect("opens a ledger from before replacements reported their removals, and reports them from then on", () =>
    Effect.gen(function*() {
      const path = join(yield* tempDir("jobs"), "ingest.db")
      const first = yield* open(path)
      yield* first.create(newJob("j1"))
      yield* first.finish("j1", { state: "done", checkpoint: at(1) })
      // the column as an older ledger lacked it
      const db = new DatabaseSync(path)
      db.exec("ALTER TABLE jobs DROP COLUMN removed_unlisted")
      db.close()
      const jobs = yield* open(path)
      assert.notProperty(Option.getOrThrow(yield* jobs.get("j1")).job, "removedUnlisted")
      yield* jobs.create(newJob("j2"))
      yield* jobs.finish("j2", { state: "done", checkpoint: at(1), removedUnlisted: 7 })
      assert.deepInclude(Option.getOrThrow(yield* jobs.get("j2")).job, { state: "done", removedUnlisted: 7 })
    }))
})
