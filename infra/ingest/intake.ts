/**
 * The doors' common end (Intake) on Uploads, the jobs ledger and the INGEST stream.
 *
 * A file: stored and fsynced (Uploads.put) → its job recorded `stored` (IngestJobs.create) → the
 * partner's translator woken by a FileJob on `ingest.<partner>` (Nats-Msg-Id = job id). A crash after
 * the ledger row loses nothing: a translator resumes unfinished jobs from the ledger.
 *
 * Real-time records: published first, body inline (Nats-Msg-Id = job id), then the job recorded; so
 * the 202 means the body is on JetStream, and a crash between the two is healed by the translator,
 * which creates the same job from the message (domain/ingest/realtimeJob.ts). With an Idempotency-Key
 * the job id is derived from (partner, key): a retry finds its job in the ledger and publishes
 * nothing, and two racing retries are one message (JetStream drops the second Nats-Msg-Id).
 */
import { createHash } from "node:crypto"
import { Clock, Effect, Layer, Option, Schedule, Schema } from "effect"
import { IngestJobs } from "../../domain/ingest/Job.ts"
import { IngestMessage } from "../../domain/ingest/IngestMessage.ts"
import { Intake, IntakeError } from "../../domain/ingest/Intake.ts"
import { realtimeJob } from "../../domain/ingest/realtimeJob.ts"
import { Uploads } from "../../domain/ingest/Uploads.ts"
import { ingestSubject, StreamNames } from "../../domain/subjects.ts"
import { nextUuidv7 } from "../../domain/uuidv7.ts"
import { Nats } from "../nats/Nats.ts"

/** The job id of a real-time POST with an Idempotency-Key: the same key of the same partner is the same job. */
export const keyedJobId = (partner: string, key: string): string =>
  createHash("sha256").update(`${partner}\n${key}`).digest("hex").slice(0, 32)

/** INGEST refuses new messages once it holds INGEST_MAX_BYTES (discard new): a flood is refused, not work dropped. */
const isFull = (cause: unknown) => /maximum (bytes|messages) exceeded|insufficient resources/i.test(String((cause as Error)?.message ?? cause))

const encodeMessage = Schema.encodeSync(Schema.fromJsonString(IngestMessage))

export const layer = Layer.effect(
  Intake,
  Effect.gen(function*() {
    const uploads = yield* Uploads
    const jobs = yield* IngestJobs
    const { jetstream } = yield* Nats

    /** Stored on INGEST (acknowledged by JetStream), or failed: a full stream at once, a hiccup after a few tries. */
    const publish = (message: IngestMessage) =>
      Effect.tryPromise({
        try: () =>
          jetstream.publish(ingestSubject(message.partner), encodeMessage(message), {
            msgID: message.jobId,
            expect: { streamName: StreamNames.ingest }
          }),
        catch: (cause) =>
          new IntakeError({
            operation: isFull(cause) ? "INGEST is full (INGEST_MAX_BYTES); retry later" : "publish to INGEST",
            cause
          })
      }).pipe(
        Effect.retry({ schedule: Schedule.exponential("100 millis"), times: 3, while: (error) => !error.operation.startsWith("INGEST is full") }),
        Effect.asVoid
      )

    return Intake.of({
      file: (input) =>
        Effect.gen(function*() {
          const stored = yield* uploads.put(input.partner, input.body, input.maxBytes === undefined ? {} : { maxBytes: input.maxBytes })
          const id = yield* nextUuidv7
          const job = yield* jobs.create({
            id,
            partner: input.partner,
            source: input.source,
            uploadId: stored.uploadId,
            bytes: stored.bytes,
            digest: stored.digest,
            fileName: input.fileName,
            format: input.format
          }).pipe(
            // Without its job nobody would ever read or remove the upload.
            Effect.tapError(() => Effect.ignore(uploads.remove(stored.uploadId)))
          )
          // Failing here answers 503 although the job is recorded: translators find it among the
          // unfinished jobs, and a client that sends the file again makes a duplicate (same digest).
          yield* publish({ _tag: "FileJob", jobId: id, partner: input.partner })
          return job
        }),
      records: (input) =>
        Effect.gen(function*() {
          const key = input.idempotencyKey
          if (key !== undefined) {
            const known = yield* jobs.get(keyedJobId(input.partner, key))
            if (Option.isSome(known)) return known.value.job
          }
          const jobId = key === undefined ? yield* nextUuidv7 : keyedJobId(input.partner, key)
          const receivedAt = new Date(yield* Clock.currentTimeMillis).toISOString()
          const message = {
            _tag: "RealtimeRecords" as const,
            jobId,
            partner: input.partner,
            source: "realtime" as const,
            format: input.format,
            body: input.body,
            receivedAt
          }
          yield* publish(message)
          return yield* jobs.create(realtimeJob(message))
        })
    })
  })
)
