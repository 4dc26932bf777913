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
 * nothing, and two racing retries are one message (JetStream drops the second Nats-Msg-Id) and one
 * job, recorded from the message JetStream kept, whichever request records it.
 */
import { createHash } from "node:crypto"
import { Clock, Effect, Layer, Option, Schedule, Schema } from "effect"
import { CommandIdReused } from "../../domain/entity.ts"
import { IngestJobs, type Job } from "../../domain/ingest/Job.ts"
import { IngestMessage } from "../../domain/ingest/IngestMessage.ts"
import { Intake, IntakeError } from "../../domain/ingest/Intake.ts"
import { type RealtimeRecords, realtimeJob } from "../../domain/ingest/realtimeJob.ts"
import { Uploads } from "../../domain/ingest/Uploads.ts"
import { ingestSubject, StreamNames } from "../../domain/subjects.ts"
import { nextUuidv7 } from "../../domain/uuidv7.ts"
import { Nats, tryNats } from "../nats/Nats.ts"
import { messageAt } from "../nats/scanSubject.ts"
import { makeStreamBytes, messageBytes } from "../nats/streamBytes.ts"
import { streamFull } from "../nats/streamFull.ts"
import { realtimeDigest } from "./realtimeDigest.ts"

/** The job id of a real-time POST with an Idempotency-Key: the same key of the same partner is the same job. */
export const keyedJobId = (partner: string, key: string): string =>
  createHash("sha256").update(`${partner}\n${key}`).digest("hex").slice(0, 32)

/**
 * INGEST takes no more once it holds INGEST_MAX_BYTES (kept here, infra/nats/streamBytes.ts; JetStream's
 * own bound, twice that, refuses too): a flood is refused, not work dropped.
 */
const full = "INGEST is full (INGEST_MAX_BYTES); retry later"

const encodeMessage = Schema.encodeSync(Schema.fromJsonString(IngestMessage))

export const layer = Layer.effect(
  Intake,
  Effect.gen(function*() {
    const uploads = yield* Uploads
    const jobs = yield* IngestJobs
    const { jetstream, manager } = yield* Nats
    const ingestBytes = yield* makeStreamBytes(StreamNames.ingest)

    /**
     * Stored on INGEST (acknowledged by JetStream: its answer says whether the message was a duplicate of
     * one with the same job id, which JetStream kept instead), or failed: a full stream at once, a hiccup
     * after a few tries.
     */
    const publish = (message: IngestMessage) => {
      const text = encodeMessage(message)
      const subject = ingestSubject(message.partner)
      const stored = Effect.tryPromise({
        try: () => jetstream.publish(subject, text, { msgID: message.jobId, expect: { streamName: StreamNames.ingest } }),
        catch: (cause) => new IntakeError({ operation: streamFull(cause) !== undefined ? full : "publish to INGEST", cause })
      }).pipe(Effect.retry({ schedule: Schedule.exponential("100 millis"), times: 3, while: (error) => error.operation !== full }))
      return ingestBytes.admit(messageBytes(text, subject, message.jobId), stored).pipe(
        Effect.catchTag("NatsError", (error) => Effect.fail(new IntakeError({ operation: "read INGEST's size", cause: error.cause }))),
        Effect.flatMap((published) => Option.isSome(published) ? Effect.succeed(published.value) : Effect.fail(new IntakeError({ operation: full, cause: null })))
      )
    }

    const decodeMessage = Schema.decodeUnknownOption(Schema.fromJsonString(IngestMessage))
    /**
     * The real-time message JetStream kept at `seq` under this one's job id (the duplicate's answer names
     * it); none once a translator took it off INGEST, which records the job before it does.
     */
    const kept = (seq: number): Effect.Effect<Option.Option<RealtimeRecords>, IntakeError> =>
      tryNats("read INGEST", () => messageAt(manager, StreamNames.ingest, seq)).pipe(
        Effect.map((stored) =>
          Option.flatMap(Option.fromNullishOr(stored), (msg) => Option.filter(decodeMessage(msg.string()), (m): m is RealtimeRecords => m._tag === "RealtimeRecords"))),
        Effect.mapError((error) => new IntakeError({ operation: "read INGEST", cause: error.cause }))
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
          const jobId = key === undefined ? yield* nextUuidv7 : keyedJobId(input.partner, key)
          const digest = realtimeDigest({ jobId, format: input.format, body: input.body })
          // The key's job, if it is this request's: another body under the same key is refused, not taken for it.
          const same = (job: Job) => job.digest === digest ? Effect.succeed(job) : Effect.fail(new CommandIdReused({ commandId: jobId }))
          if (key !== undefined) {
            const known = yield* jobs.get(jobId)
            if (Option.isSome(known)) return yield* same(known.value.job)
          }
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
          const ack = yield* publish(message)
          // Two racing POSTs under one key are one message (Nats-Msg-Id) and one job, recorded from the
          // message JetStream kept: the loser, whose message was dropped as a duplicate, records the
          // winner's and learns it is not its own. (Before, found by stop 25's outside attack: each
          // recorded its own, the first to reach the ledger won, and with two processes 91 keys of 400
          // answered 202 to a body JetStream had dropped, while the other body was applied.)
          const winner: Option.Option<RealtimeRecords> = ack.duplicate ? yield* kept(ack.seq) : Option.some(message)
          if (Option.isSome(winner)) return yield* Effect.flatMap(jobs.create(realtimeJob(winner.value, realtimeDigest(winner.value))), same)
          // gone from INGEST: a translator took it, and recorded its job first
          const found = yield* jobs.get(jobId)
          if (Option.isSome(found)) return yield* same(found.value.job)
          return yield* new IntakeError({ operation: "find the job of this Idempotency-Key", cause: null })
        })
    })
  })
)
