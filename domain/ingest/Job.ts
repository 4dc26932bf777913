/**
 * Ingestion jobs and their ledger. Every door (HTTP file, FTP, SFTP, real-time POST) ends in a job:
 * an upload stored durably, then translated by its partner's TranslatorActor. The ledger is what
 * people watching a job read (GET /v1/ingest/jobs/{id}) and what a restarted translator resumes from.
 *
 * Reconciliation, always true once a job is done: `linesRead = linesRejected + lines that produced
 * records`, and `recordsAccepted = duplicates + recordsCommitted`. Public contract (the job's JSON).
 * Declared here; stored by infra/ingest/ (SQLite under DATA_DIR).
 */
import { Context, Schema } from "effect"
import type { Effect, Option } from "effect"
import { cutText } from "../cutText.ts"

export const JobSource = Schema.Literals(["http", "ftp", "sftp", "realtime"])
export type JobSource = typeof JobSource.Type

export const JobState = Schema.Literals(["stored", "translating", "done", "failed"])
export type JobState = typeof JobState.Type

/** Why a line was rejected (or where the input broke): line from 1, column (from 1, or the header's name) when one is to blame. */
export const LineError = Schema.Struct({
  line: Schema.Int,
  column: Schema.optionalKey(Schema.Union([Schema.Int, Schema.String])),
  reason: Schema.String
}).annotate({ identifier: "LineError" })
export type LineError = typeof LineError.Type

/** The first errors kept per job; the rest are only counted (`linesRejected`). */
export const MAX_JOB_ERRORS = 100

/**
 * Characters of an error's reason and column, and of a job's failure, kept: past them, cut with how long
 * they were. A reason may quote the line's value (an unknown segment code of 60 KB): 100 such errors made
 * a job's report 6 MB, each read of it 19 ms of the event loop, for its partner or for another's key
 * answered 404 (the third attack of stop 27: 8 such reads at once took `/health` from p50 2.7 ms to
 * 132 ms); a failure quoted a header naming a column 16,000 times, 149 KB (the fourth attack).
 */
export const MAX_ERROR_CHARS = 500

/** `text` cut to MAX_ERROR_CHARS, saying how long it was. */
export const boundedText = (text: string) => cutText(text, MAX_ERROR_CHARS)

/** `error` with its reason and column cut to MAX_ERROR_CHARS. */
export const boundedError = (error: LineError): LineError =>
  error.reason.length <= MAX_ERROR_CHARS && (typeof error.column !== "string" || error.column.length <= MAX_ERROR_CHARS)
    ? error
    : { ...error, reason: boundedText(error.reason), ...(typeof error.column === "string" ? { column: boundedText(error.column) } : {}) }

/** The counters a translator advances; saved with its checkpoint. */
export const JobCounts = Schema.Struct({
  linesRead: Schema.Int,
  recordsAccepted: Schema.Int,
  linesRejected: Schema.Int,
  duplicates: Schema.Int,
  recordsCommitted: Schema.Int
})
export type JobCounts = typeof JobCounts.Type

export const zeroCounts: JobCounts = { linesRead: 0, recordsAccepted: 0, linesRejected: 0, duplicates: 0, recordsCommitted: 0 }

/** A job as the API shows it (the public contract) */
export const Job = Schema.Struct({
  id: Schema.String,
  partner: Schema.String,
  source: JobSource,
  state: JobState,
  /** of the upload's bytes translated so far, 0–100 (100 once done) */
  percent: Schema.Number,
  ...JobCounts.fields,
  errors: Schema.Array(LineError),
  /** the upload: its size, sha256 and file name where it had one */
  bytes: Schema.Int,
  digest: Schema.String,
  fileName: Schema.optionalKey(Schema.String),
  /** why it failed (also the last of `errors` when a line is to blame) */
  failure: Schema.optionalKey(Schema.String),
  /**
   * A replacement file (`formatSpec.mode: "replace"`) once done: the removals it sent of the partner's
   * memberships it did not list (one of them newer than the file stays: its removal changes nothing)
   */
  removedUnlisted: Schema.optionalKey(Schema.Int),
  createdAt: Schema.String,
  updatedAt: Schema.String
}).annotate({ identifier: "IngestJob" })
export type Job = typeof Job.Type

/**
 * Where a translator is in a job: every line up to `line` is counted in `counts` and every record
 * of those lines is committed, at `bytes` into the (decompressed) input. Resuming starts after it.
 */
export const JobCheckpoint = Schema.Struct({
  line: Schema.Int,
  bytes: Schema.Int,
  counts: JobCounts,
  errors: Schema.Array(LineError)
})
export type JobCheckpoint = typeof JobCheckpoint.Type

/** A new job: its upload is stored and fsynced (api, FTP and SFTP create these). */
export interface NewJob {
  readonly id: string
  readonly partner: string
  readonly source: JobSource
  readonly uploadId: string
  readonly bytes: number
  readonly digest: string
  readonly fileName?: string | undefined
  /** what the upload holds: the partner's format (its spec), or loader-format JSON Lines */
  readonly format: "partner" | "loader"
}

/** A job as the translator sees it: the public job plus where its upload is and where it stopped. */
export interface JobRecord {
  readonly job: Job
  readonly uploadId: string
  readonly format: "partner" | "loader"
  readonly checkpoint: Option.Option<JobCheckpoint>
}

export class IngestJobsError extends Schema.TaggedError<IngestJobsError>()("IngestJobsError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {}

export class IngestJobs extends Context.Service<IngestJobs, {
  /** Records a job in state `stored`; a job with this id already there is returned as it is (idempotent). */
  readonly create: (job: NewJob) => Effect.Effect<Job, IngestJobsError>
  readonly get: (id: string) => Effect.Effect<Option.Option<JobRecord>, IngestJobsError>
  /**
   * The partner of a job, if it exists: one indexed read, nothing decoded, so that telling a partner "no
   * such job" costs the same whether the id is another partner's job or nothing (a whole record read and
   * decoded first told them apart by ~0.3 ms).
   */
  readonly partnerOf: (id: string) => Effect.Effect<Option.Option<string>, IngestJobsError>
  /** A partner's jobs, newest first, at most `limit`, before the job `before` (paging). */
  readonly list: (partner: string, options: { readonly limit: number; readonly before?: string | undefined }) => Effect.Effect<ReadonlyArray<Job>, IngestJobsError>
  /** The newest job of this partner with this digest that is done, if any (the same file uploaded again). */
  readonly doneWithDigest: (partner: string, digest: string) => Effect.Effect<Option.Option<Job>, IngestJobsError>
  /** `translating`, with progress: saved atomically (the translator resumes from the last one saved). */
  readonly checkpoint: (id: string, checkpoint: JobCheckpoint, percent: number) => Effect.Effect<void, IngestJobsError>
  /** The end: `done` (counts reconcile) or `failed` (with why); from then on the job does not change. */
  readonly finish: (id: string, end: {
    readonly state: "done" | "failed"
    readonly checkpoint: JobCheckpoint
    readonly failure?: string | undefined
    readonly removedUnlisted?: number | undefined
  }) => Effect.Effect<void, IngestJobsError>
  /** Jobs not finished yet (stored or translating), oldest first: what a restarted translator picks up. */
  readonly unfinished: (partner: string) => Effect.Effect<ReadonlyArray<JobRecord>, IngestJobsError>
}>()("tributary/IngestJobs") {}
