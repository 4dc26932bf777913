/**
 * The three doors' common end: an upload or a real-time body becomes a job. HTTP, FTP and SFTP call
 * `file`; the real-time route calls `records`. Implemented in infra/ingest/intake.ts on Uploads,
 * IngestJobs and the INGEST stream.
 */
import { Context, Schema } from "effect"
import type { Effect, Stream } from "effect"
import type { CommandIdReused } from "../entity.ts"
import type { IngestJobsError, Job } from "./Job.ts"
import type { UploadsError, UploadsFull, UploadTooLarge } from "./Uploads.ts"

export class IntakeError extends Schema.TaggedError<IntakeError>()("IntakeError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {}

/** What the upload holds: the partner's own format (its format spec), or loader-format JSON Lines. */
export type UploadFormat = "partner" | "loader"

export class Intake extends Context.Service<Intake, {
  /**
   * Stores the file (streamed, fsynced, digest recorded), records its job (`stored`) and wakes the
   * partner's translator; answers once all of it is durable.
   */
  readonly file: <E>(input: {
    readonly partner: string
    readonly source: "http" | "ftp" | "sftp"
    readonly fileName?: string | undefined
    readonly format: UploadFormat
    readonly body: Stream.Stream<Uint8Array, E>
    readonly maxBytes?: number | undefined
  }) => Effect.Effect<Job, E | UploadsError | UploadTooLarge | UploadsFull | IngestJobsError | IntakeError>
  /**
   * A real-time body (small, UTF-8): answered once JetStream stored it. With an idempotency key, the
   * same key of the same partner with the same body and format answers the same job and publishes
   * nothing new; with another body or format it fails with CommandIdReused (nothing is published).
   */
  readonly records: (input: {
    readonly partner: string
    readonly format: UploadFormat
    readonly body: string
    readonly idempotencyKey?: string | undefined
  }) => Effect.Effect<Job, IngestJobsError | IntakeError | CommandIdReused>
}>()("tributary/Intake") {}
