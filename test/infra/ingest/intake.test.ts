import { assert, describe, layer } from "@effect/vitest"
import { createHash } from "node:crypto"
import { Effect, Exit, Layer, Option, Stream } from "effect"
import { IngestJobs } from "../../../domain/ingest/Job.ts"
import { Intake } from "../../../domain/ingest/Intake.ts"
import { realtimeJob } from "../../../domain/ingest/realtimeJob.ts"
import { Uploads } from "../../../domain/ingest/Uploads.ts"
import { StreamNames } from "../../../domain/subjects.ts"
import * as IngestIntake from "../../../infra/ingest/intake.ts"
import { realtimeDigest } from "../../../infra/ingest/realtimeDigest.ts"
import { layerSqlite } from "../../../infra/ingest/jobsSqlite.ts"
import { layerDir } from "../../../infra/ingest/uploadsDir.ts"
import { streamMessages } from "../../fixtures/jetstreamContents.ts"
import { layerTestNats } from "../../fixtures/nats.ts"
import { tempDir } from "../../fixtures/tempDir.ts"

const stores = Layer.unwrap(Effect.map(tempDir("intake"), (dir) =>
  Layer.mergeAll(layerDir({ dir: `${dir}/uploads` }), layerSqlite({ path: `${dir}/ingest.db` }))))

// INGEST kept small, to see it refuse when full.
const intake = IngestIntake.layer.pipe(Layer.provideMerge(stores), Layer.provideMerge(layerTestNats({ ingestMaxBytes: 64 * 1024 })))

const ingestOf = (partner: string) =>
  Effect.map(streamMessages(StreamNames.ingest), (messages) => messages.filter((m) => m.subject === `ingest.${partner}`))

layer(intake, { timeout: 60_000 })("intake", (it) => {
  describe("a file", () => {
    it.effect("is stored, recorded `stored` and announced on ingest.<partner> with its job id as Nats-Msg-Id", () =>
      Effect.gen(function*() {
        const file = Buffer.from("user,segments\nu1,a|b\n".repeat(1000))
        const job = yield* (yield* Intake).file({ partner: "acme", source: "http", fileName: "f.csv", format: "partner", body: Stream.make(new Uint8Array(file)) })
        assert.deepInclude(job, { partner: "acme", source: "http", state: "stored", bytes: file.length, fileName: "f.csv" })
        assert.strictEqual(job.digest, createHash("sha256").update(file).digest("hex"))
        const record = Option.getOrThrow(yield* (yield* IngestJobs).get(job.id))
        assert.strictEqual(record.format, "partner")
        const stored = Buffer.concat(yield* Stream.runCollect((yield* Uploads).read(record.uploadId)))
        assert.isTrue(stored.equals(file))
        const messages = yield* ingestOf("acme")
        assert.deepStrictEqual(messages.map((m) => m.body), [{ _tag: "FileJob", jobId: job.id, partner: "acme" }])
        assert.strictEqual(messages[0]!.headers["Nats-Msg-Id"], job.id)
      }))

    it.effect("over maxBytes leaves no job and no message", () =>
      Effect.gen(function*() {
        const exit = yield* Effect.exit((yield* Intake).file({
          partner: "big", source: "ftp", format: "loader", maxBytes: 100, body: Stream.make(new Uint8Array(101))
        }))
        assert.isTrue(Exit.isFailure(exit))
        assert.match(JSON.stringify(exit), /UploadTooLarge/)
        assert.deepStrictEqual(yield* (yield* IngestJobs).list("big", { limit: 10 }), [])
        assert.deepStrictEqual(yield* ingestOf("big"), [])
      }))
  })

  describe("real-time records", () => {
    it.effect("are on INGEST with their body when answered, and their job is the one the translator would heal", () =>
      Effect.gen(function*() {
        const body = `{"idKind":"cookie","userId":"u1","segmentId":"1","op":"add","time":"2026-01-01T00:00:00Z"}\n`
        const job = yield* (yield* Intake).records({ partner: "rt", format: "loader", body })
        assert.deepInclude(job, { partner: "rt", source: "realtime", state: "stored", bytes: body.length, digest: realtimeDigest({ jobId: job.id, format: "loader", body }) })
        const messages = yield* ingestOf("rt")
        assert.strictEqual(messages.length, 1)
        const message = messages[0]!.body as Parameters<typeof realtimeJob>[0]
        assert.deepInclude(message, { _tag: "RealtimeRecords", jobId: job.id, partner: "rt", source: "realtime", format: "loader", body })
        assert.strictEqual(messages[0]!.headers["Nats-Msg-Id"], job.id)
        // The translator, creating the job from the message, finds the same one.
        assert.deepStrictEqual(yield* (yield* IngestJobs).create(realtimeJob(message, realtimeDigest(message))), job)
      }))

    it.effect("with the same Idempotency-Key answer the same job and publish once", () =>
      Effect.gen(function*() {
        const intake = yield* Intake
        const first = yield* intake.records({ partner: "idem", format: "partner", body: "u1,a\n", idempotencyKey: "k1" })
        const again = yield* intake.records({ partner: "idem", format: "partner", body: "u1,a\n", idempotencyKey: "k1" })
        // Racing retries: the ledger has not got it yet, JetStream drops the second Nats-Msg-Id.
        const raced = yield* Effect.all([1, 2, 3].map(() => intake.records({ partner: "idem", format: "partner", body: "u2,b\n", idempotencyKey: "k2" })), { concurrency: "unbounded" })
        const other = yield* intake.records({ partner: "idem2", format: "partner", body: "u1,a\n", idempotencyKey: "k1" })
        assert.strictEqual(again.id, first.id)
        assert.strictEqual(new Set(raced.map((j) => j.id)).size, 1)
        assert.notStrictEqual(other.id, first.id)
        assert.strictEqual((yield* ingestOf("idem")).length, 2)
      }))

    it.effect("with the same Idempotency-Key but another body or format are refused, even when racing, and add nothing", () =>
      Effect.gen(function*() {
        const intake = yield* Intake
        const first = yield* intake.records({ partner: "reuse", format: "partner", body: "u1,a\n", idempotencyKey: "k1" })
        const otherBody = yield* Effect.exit(intake.records({ partner: "reuse", format: "partner", body: "u1,b\n", idempotencyKey: "k1" }))
        const otherFormat = yield* Effect.exit(intake.records({ partner: "reuse", format: "loader", body: "u1,a\n", idempotencyKey: "k1" }))
        assert.match(JSON.stringify(otherBody), /CommandIdReused/)
        assert.match(JSON.stringify(otherFormat), /CommandIdReused/)
        // Racing: one body wins the key, every other is refused.
        const raced = yield* Effect.all(["u2,a\n", "u2,b\n", "u2,c\n"].map((body) => Effect.exit(intake.records({ partner: "reuse", format: "partner", body, idempotencyKey: "k2" }))), { concurrency: "unbounded" })
        assert.strictEqual(raced.filter(Exit.isSuccess).length, 1)
        assert.strictEqual((yield* intake.records({ partner: "reuse", format: "partner", body: "u1,a\n", idempotencyKey: "k1" })).id, first.id)
        assert.strictEqual((yield* ingestOf("reuse")).length, 2)
      }))

    it.effect("are refused once INGEST is full, rather than old work dropped", () =>
      Effect.gen(function*() {
        const intake = yield* Intake
        // within an eighth of INGEST's 64 KiB each, as the configuration keeps them
        const body = "x".repeat(6 * 1024)
        const answers = yield* Effect.forEach(Array.from({ length: 16 }), () => Effect.exit(intake.records({ partner: "flood", format: "partner", body })))
        const refused = answers.filter(Exit.isFailure)
        assert.isAbove(refused.length, 0)
        assert.isAbove(answers.length - refused.length, 4, "INGEST took what fitted")
        assert.match(JSON.stringify(refused[0]), /INGEST is full/)
        // Every answered POST is still there.
        assert.strictEqual((yield* ingestOf("flood")).length, answers.length - refused.length)
        assert.strictEqual((yield* (yield* IngestJobs).list("flood", { limit: 100 })).length, answers.length - refused.length)
      }))
  })
})
