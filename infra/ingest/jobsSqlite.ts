/**
 * The ingestion jobs ledger (IngestJobs) in a SQLite file (DATA_DIR/ingest.db): WAL, fsynced at every
 * commit (synchronous=FULL), so a job answered 202 survives a crash, and every process on the same
 * DATA_DIR (HTTP doors, FTP/SFTP, translators) reads and writes the same rows. A job's counters,
 * errors and checkpoint are one row, written in one statement: a reader never sees half a checkpoint.
 */
import { Clock, Effect, Layer, Option, Schema } from "effect"
import { boundedError, boundedText, IngestJobs, IngestJobsError, type Job, JobCheckpoint, type JobRecord, LineError, MAX_JOB_ERRORS } from "../../domain/ingest/Job.ts"
import { openSharedSqlite } from "./sqliteFile.ts"

interface Row {
  readonly id: string
  readonly partner: string
  readonly source: Job["source"]
  readonly state: Job["state"]
  readonly percent: number
  readonly lines_read: number
  readonly records_accepted: number
  readonly lines_rejected: number
  readonly duplicates: number
  readonly records_committed: number
  readonly errors: string
  readonly bytes: number
  readonly digest: string
  readonly file_name: string | null
  readonly failure: string | null
  readonly created_at: string
  readonly updated_at: string
  readonly upload_id: string
  readonly format: "partner" | "loader"
  readonly checkpoint: string | null
  readonly removed_unlisted: number | null
}

const columns = `id, partner, source, state, percent, lines_read, records_accepted, lines_rejected, duplicates,
  records_committed, errors, bytes, digest, file_name, failure, created_at, updated_at, upload_id, format, checkpoint, removed_unlisted`

const decodeErrors = Schema.decodeUnknownSync(Schema.fromJsonString(Schema.Array(LineError)))
const decodeCheckpoint = Schema.decodeUnknownSync(Schema.fromJsonString(JobCheckpoint))

const toJob = (row: Row): Job => ({
  id: row.id,
  partner: row.partner,
  source: row.source,
  state: row.state,
  percent: row.percent,
  linesRead: row.lines_read,
  recordsAccepted: row.records_accepted,
  linesRejected: row.lines_rejected,
  duplicates: row.duplicates,
  recordsCommitted: row.records_committed,
  errors: decodeErrors(row.errors),
  bytes: row.bytes,
  digest: row.digest,
  ...(row.file_name === null ? {} : { fileName: row.file_name }),
  ...(row.failure === null ? {} : { failure: row.failure }),
  ...(row.removed_unlisted === null ? {} : { removedUnlisted: row.removed_unlisted }),
  createdAt: row.created_at,
  updatedAt: row.updated_at
})

const toRecord = (row: Row): JobRecord => ({
  job: toJob(row),
  uploadId: row.upload_id,
  format: row.format,
  checkpoint: row.checkpoint === null ? Option.none() : Option.some(decodeCheckpoint(row.checkpoint))
})

export const layerSqlite = (options: { readonly path: string }) =>
  Layer.effect(
    IngestJobs,
    Effect.gen(function*() {
      const db = yield* Effect.acquireRelease(
        Effect.try({
          try: () => {
            const db = openSharedSqlite(options.path)
            db.exec(`CREATE TABLE IF NOT EXISTS jobs (
                seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, partner TEXT NOT NULL, source TEXT NOT NULL,
                state TEXT NOT NULL, percent REAL NOT NULL DEFAULT 0, lines_read INTEGER NOT NULL DEFAULT 0,
                records_accepted INTEGER NOT NULL DEFAULT 0, lines_rejected INTEGER NOT NULL DEFAULT 0,
                duplicates INTEGER NOT NULL DEFAULT 0, records_committed INTEGER NOT NULL DEFAULT 0,
                errors TEXT NOT NULL DEFAULT '[]', bytes INTEGER NOT NULL, digest TEXT NOT NULL, file_name TEXT,
                failure TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, upload_id TEXT NOT NULL,
                format TEXT NOT NULL, checkpoint TEXT, removed_unlisted INTEGER);
              CREATE INDEX IF NOT EXISTS jobs_by_partner ON jobs (partner, seq);
              CREATE INDEX IF NOT EXISTS jobs_by_digest ON jobs (partner, digest, state);
              CREATE INDEX IF NOT EXISTS jobs_unfinished ON jobs (partner, seq) WHERE state IN ('stored', 'translating')`)
            // A ledger from before replacements reported their removals (stop 24)
            const known = db.prepare("SELECT name FROM pragma_table_info('jobs')").all() as Array<{ name: string }>
            if (!known.some((c) => c.name === "removed_unlisted")) db.exec("ALTER TABLE jobs ADD COLUMN removed_unlisted INTEGER")
            return db
          },
          catch: (cause) => new IngestJobsError({ operation: "open", cause })
        }),
        (db) => Effect.sync(() => db.close())
      )
      const insert = db.prepare(`INSERT INTO jobs (id, partner, source, state, bytes, digest, file_name, created_at, updated_at, upload_id, format)
        VALUES (?, ?, ?, 'stored', ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`)
      const byId = db.prepare(`SELECT ${columns} FROM jobs WHERE id = ?`)
      const page = db.prepare(`SELECT ${columns} FROM jobs WHERE partner = ? AND seq < ? ORDER BY seq DESC LIMIT ?`)
      const seqOf = db.prepare(`SELECT seq FROM jobs WHERE id = ? AND partner = ?`)
      const partnerById = db.prepare(`SELECT partner FROM jobs WHERE id = ?`)
      const doneDigest = db.prepare(`SELECT ${columns} FROM jobs WHERE partner = ? AND digest = ? AND state = 'done' ORDER BY seq DESC LIMIT 1`)
      const pending = db.prepare(`SELECT ${columns} FROM jobs WHERE partner = ? AND state IN ('stored', 'translating') ORDER BY seq`)
      const progress = db.prepare(`UPDATE jobs SET state = ?, percent = ?, lines_read = ?, records_accepted = ?, lines_rejected = ?,
        duplicates = ?, records_committed = ?, errors = ?, checkpoint = ?, failure = ?, removed_unlisted = ?, updated_at = ?
        WHERE id = ? AND state IN ('stored', 'translating')`)

      const use = <A>(operation: string, f: () => A) => Effect.try({ try: f, catch: (cause) => new IngestJobsError({ operation, cause }) })
      const now = Effect.map(Clock.currentTimeMillis, (ms) => new Date(ms).toISOString())
      const getRow = (id: string) => byId.get(id) as Row | undefined

      /** Moves an unfinished job on; a finished one never changes again. */
      const advance = (
        operation: string,
        id: string,
        state: Job["state"],
        checkpoint: JobCheckpoint,
        percent: number,
        end?: { readonly failure?: string | undefined; readonly removedUnlisted?: number | undefined }
      ) =>
        Effect.flatMap(now, (at) =>
          use(operation, () => {
            const c = checkpoint.counts
            // what a report keeps is bounded here, whoever wrote it (a quoted line, a broken input's reason)
            const errors = checkpoint.errors.slice(0, MAX_JOB_ERRORS).map(boundedError)
            progress.run(
              state, percent, c.linesRead, c.recordsAccepted, c.linesRejected, c.duplicates, c.recordsCommitted,
              JSON.stringify(errors), JSON.stringify({ ...checkpoint, errors }), end?.failure === undefined ? null : boundedText(end.failure),
              end?.removedUnlisted ?? null, at, id
            )
          }))

      return IngestJobs.of({
        create: (job) =>
          Effect.flatMap(now, (at) =>
            use("create job", () => {
              // Another door or process may have created it first (a translator healing a real-time job): theirs stands.
              insert.run(job.id, job.partner, job.source, job.bytes, job.digest, job.fileName ?? null, at, at, job.uploadId, job.format)
              return toJob(getRow(job.id)!)
            })),
        get: (id) => use("get job", () => Option.map(Option.fromNullishOr(getRow(id)), toRecord)),
        partnerOf: (id) => use("get job's partner", () => Option.fromNullishOr((partnerById.get(id) as { partner: string } | undefined)?.partner)),
        list: (partner, { before, limit }) =>
          use("list jobs", () => {
            const from = before === undefined ? Number.MAX_SAFE_INTEGER : (seqOf.get(before, partner) as { seq: number } | undefined)?.seq ?? 0
            return (page.all(partner, from, limit) as unknown as Array<Row>).map(toJob)
          }),
        doneWithDigest: (partner, digest) =>
          use("find job by digest", () => Option.map(Option.fromNullishOr(doneDigest.get(partner, digest) as Row | undefined), toJob)),
        checkpoint: (id, checkpoint, percent) => advance("checkpoint job", id, "translating", checkpoint, Math.min(100, Math.max(0, percent))),
        finish: (id, end) =>
          Effect.suspend(() => advance("finish job", id, end.state, end.checkpoint, end.state === "done" ? 100 : (getRow(id)?.percent ?? 0), end)),
        unfinished: (partner) => use("list unfinished jobs", () => (pending.all(partner) as unknown as Array<Row>).map(toRecord))
      })
    })
  )
