/**
 * Partner ingestion over HTTP (issue 7): a file streamed to storage, a small real-time body, and the
 * jobs both become. A `partner:<id>` key acts only for its own partner; admin may do everything;
 * service keys read jobs. Uploads are answered 202 once durable: a file once stored and fsynced
 * (DATA_DIR/uploads), a real-time body once JetStream stored it (INGEST).
 */
import { Duration, Effect, Option, Schema, Stream } from "effect"
import { IngestJobs, Job } from "../../domain/ingest/Job.ts"
import { Intake, type UploadFormat } from "../../domain/ingest/Intake.ts"
import { fileInFolder, MAX_FILE_NAME } from "../../domain/ingest/uploadFileName.ts"
import * as Admission from "../admission.ts"
import { forPartner } from "../authorization.ts"
import { makeByteBudget, withMeteredBody } from "../byteBudget.ts"
import { InvalidRequest, NotFound, Overloaded, problemResponse } from "../problems.ts"
import { route } from "../route.ts"
import { readBoundedPage } from "./boundedPage.ts"
import { ndjson, readWithin, upload } from "../streaming.ts"
import { activePartner, PartnerId } from "./ingestPartner.ts"
import { Limit } from "./params.ts"

export interface IngestRoutesOptions {
  /** bytes one file may have (UPLOAD_MAX_BYTES) */
  readonly uploadMaxBytes: number
  /** files received at once by this process (UPLOAD_MAX_CONCURRENT); 503 + Retry-After beyond */
  readonly uploadMaxConcurrent: number
  /** files one partner sends this process at once (UPLOAD_MAX_CONCURRENT_PER_PARTNER); 503 + Retry-After beyond, to that partner only */
  readonly uploadMaxConcurrentPerPartner: number
  /** bytes one real-time body may have (REALTIME_MAX_BYTES) */
  readonly realtimeMaxBytes: number
  /** bytes of real-time bodies this process reads at once (REALTIME_INFLIGHT_MAX_BYTES), a partner at most an eighth; 503 + Retry-After beyond */
  readonly realtimeInflightMaxBytes: number
  /** how long a real-time body may take to arrive whole (HTTP_REQUEST_TIMEOUT, as a JSON body); 408 beyond */
  readonly realtimeBodyTimeout: Duration.Input
}

/** Media types of a partner file: its own format (CSV, TSV, text, JSON Lines), or gzip of it, or anything as bytes. */
const fileTypes = ["application/octet-stream", "application/gzip", "text/csv", "text/tab-separated-values", "text/plain", ndjson]
/** Real-time bodies are text: the partner's format, or loader-format JSON Lines. */
const recordTypes = ["text/csv", "text/tab-separated-values", "text/plain", ndjson]

const Format = Schema.Literals(["partner", "loader"]).annotate({
  description: "loader: the common loader format as JSON Lines; partner: the partner's own format (its formatSpec). " +
    "Default: loader for application/x-ndjson, else partner when it has a formatSpec, else loader"
})

/**
 * A file's name as the partner calls it: shown in its job and in its folder at the file doors, never a
 * path. The file doors' rule (domain/ingest/uploadFileName.ts): before stop 20 the HTTP door took names
 * the file doors refuse (a right-to-left override making `a\u202evsc.exe` list as `aexe.csv`, zero-width
 * and blank characters, a line separator, `..`), found by the outside attack of stop 20.
 */
const fileNameRule = "a plain file name: no / or \\, not only dots, no blank at either end nor two in a row, no control, format (bidi, zero-width), separator, blank filler or space other than the plain one"
const FileName = Schema.String.check(
  Schema.isMinLength(1),
  Schema.isMaxLength(MAX_FILE_NAME),
  Schema.makeFilter((s: string) => fileInFolder(s) === s || fileNameRule)
)

const decodeFileName = Schema.decodeUnknownOption(FileName)
const utf8 = new TextDecoder("utf-8", { fatal: true })

/**
 * X-File-Name as the partner wrote it: HTTP hands a header's bytes over as Latin-1 text, so UTF-8
 * (`café.csv`) is read back as UTF-8 before the file name's rule (before the re-attack of stop 20 it was
 * stored as `cafÃ©.csv`). Bytes that are not UTF-8, or a name the rule refuses, are 400.
 */
const headerFileName = (raw: string) =>
  Effect.suspend(() => {
    let name: string
    try {
      name = utf8.decode(Buffer.from(raw, "latin1"))
    } catch {
      return Effect.fail(new InvalidRequest({ issues: [{ in: "header", path: ["x-file-name"], message: "not UTF-8" }] }))
    }
    return Option.match(decodeFileName(name), {
      onNone: () => Effect.fail(new InvalidRequest({ issues: [{ in: "header", path: ["x-file-name"], message: fileNameRule }] })),
      onSome: Effect.succeed
    })
  })

const JobId = Schema.String.check(Schema.isPattern(/^[A-Za-z0-9-]{1,64}$/, { description: "a job id" }))

const Accepted = Schema.Struct({ jobId: Schema.String, job: Job }).annotate({ identifier: "IngestAccepted" })
const JobPage = Schema.Struct({
  jobs: Schema.Array(Job),
  /** the `before` of the next (older) page, when there may be one */
  next: Schema.optionalKey(Schema.String)
}).annotate({ identifier: "IngestJobPage" })

const PartnerParams = Schema.Struct({ partner: PartnerId })

const uploadProblems = {
  400: problemResponse("invalid parameter, or a body that is not valid UTF-8 or not read to its end"),
  401: problemResponse("missing or unknown API key"),
  403: problemResponse("a key of another partner, or a role that may not upload"),
  404: problemResponse("no such partner"),
  409: problemResponse("the partner is paused"),
  413: problemResponse("the body is over the limit; nothing of it is kept"),
  408: problemResponse("the body came too slowly (a file: under UPLOAD_MIN_BYTES_PER_SECOND; real-time records: not whole within HTTP_REQUEST_TIMEOUT); nothing of it is kept"),
  415: problemResponse("a media type or content encoding not listed"),
  507: problemResponse("the platform's disk has less free space than UPLOADS_MIN_FREE_BYTES: no upload is taken until there is room; nothing of it is kept"),
  503: problemResponse("too many uploads or real-time bodies in progress (of this partner, or in all), INGEST full, or storage unavailable; see Retry-After")
} as const

/** loader when asked, or for JSON Lines; otherwise the partner's own format when it has one. */
const formatOf = (asked: UploadFormat | undefined, contentType: string | undefined, hasFormatSpec: boolean): UploadFormat =>
  asked ?? ((contentType ?? "").split(";")[0]!.trim().toLowerCase() === ndjson || !hasFormatSpec ? "loader" : "partner")

const accepted = (job: Job) => ({ status: 202, body: { jobId: job.id, job }, headers: { location: `/v1/ingest/jobs/${job.id}` } })

export const ingestRoutes = (options: IngestRoutesOptions) => {
  // Each partner's share of the slots: one partner's uploads (32 large files, or bodies kept trickling
  // at the minimum pace) would otherwise hold every slot and turn the other partners away.
  const uploads = Admission.make("uploads", { capacity: options.uploadMaxConcurrent, queue: 0, maxWaitMillis: 0, perTenant: options.uploadMaxConcurrentPerPartner })
  /** One of this process's upload slots, within the partner's share, for the life of `effect`; or Overloaded (503 + Retry-After). */
  const withUploadSlot = <A, E, R>(partner: string, effect: Effect.Effect<A, E, R>) =>
    Effect.acquireUseRelease(
      Effect.flatMap(Effect.promise(() => uploads.enter(`partner:${partner}`)), (slot) => typeof slot === "function" ? Effect.succeed(slot) : Effect.fail(slot)),
      () => effect,
      (release) => Effect.sync(release)
    )
  // Real-time bodies are read whole before their job: their bytes held at once are bounded, and a body
  // must come whole in time. Before (the outside attack of stop 20), bodies of 1 KB of gzip inflating
  // to 1 MiB each, kept open with empty deflate blocks, held ~1 MB apiece for as long as the sender liked.
  const realtimeBudget = makeByteBudget(options.realtimeInflightMaxBytes, options.realtimeMaxBytes, { what: "real-time bodies", setting: "REALTIME_INFLIGHT_MAX_BYTES", owner: "partner" })
  const realtimeBodyTimeout = Duration.fromInputUnsafe(options.realtimeBodyTimeout)
  const realtimeRefused = () => new Overloaded({ detail: realtimeBudget.refusal, retryAfterSeconds: 1 })

  return [
    route({
      method: "POST", url: "/v1/ingest/:partner/files", tags: ["ingest"], roles: ["partner"],
      summary: "Upload a partner file of any size (streamed, gzip or not); 202 once it is stored and fsynced, with its job. " +
        "Send `Content-Encoding: gzip` for a compressed transfer of the file, or `Content-Type: application/gzip` for a .gz file. " +
        "Name it with `?fileName=` or `X-File-Name`",
      authorize: ({ principal, params }) => forPartner(principal, params.partner),
      params: PartnerParams,
      query: Schema.Struct({ format: Schema.optionalKey(Format), fileName: Schema.optionalKey(FileName) }),
      // X-File-Name is read as UTF-8 and checked after (headerFileName): its bytes arrive as Latin-1 text
      headers: Schema.Struct({ "x-file-name": Schema.optionalKey(Schema.String.check(Schema.isMaxLength(4 * MAX_FILE_NAME))), "content-type": Schema.optionalKey(Schema.String) }),
      body: upload({ contentTypes: fileTypes, maxBytes: options.uploadMaxBytes, description: "the file's bytes, as the partner has it" }),
      responses: { 202: { description: "stored; its job", schema: Accepted }, ...uploadProblems },
      handler: ({ params, query, headers, body }) =>
        Effect.gen(function*() {
          const partner = yield* activePartner(params.partner)
          const fileName = query.fileName ?? (headers["x-file-name"] === undefined ? undefined : yield* headerFileName(headers["x-file-name"]))
          const job = yield* withUploadSlot(params.partner, (yield* Intake).file({
            partner: params.partner,
            source: "http",
            fileName,
            format: formatOf(query.format, headers["content-type"], partner.hasFormatSpec),
            body,
            maxBytes: options.uploadMaxBytes
          }))
          return accepted(job)
        })
    }),
    route({
      method: "POST", url: "/v1/ingest/:partner/records", tags: ["ingest"], roles: ["partner"], admission: "commands",
      summary: "Send a few records now: a small UTF-8 body in the partner's format or loader-format JSON Lines; " +
        "202 once JetStream stored it. With `Idempotency-Key`, a retry answers the same job and adds nothing; " +
        "the same key with another body or format is refused (422 idempotency-key-reused)",
      authorize: ({ principal, params }) => forPartner(principal, params.partner),
      params: PartnerParams,
      query: Schema.Struct({ format: Schema.optionalKey(Format) }),
      headers: Schema.Struct({
        "idempotency-key": Schema.optionalKey(Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(255))),
        "content-type": Schema.optionalKey(Schema.String)
      }),
      body: upload({ contentTypes: recordTypes, maxBytes: options.realtimeMaxBytes, description: "records, as text (UTF-8)" }),
      responses: {
        202: { description: "on JetStream; its job", schema: Accepted },
        ...uploadProblems,
        422: problemResponse("the Idempotency-Key was used for another body or format; nothing was sent")
      },
      handler: ({ params, query, headers, body }) =>
        Effect.gen(function*() {
          const partner = yield* activePartner(params.partner)
          // the body's bytes stay taken until the request ends: its text is held until it is on INGEST
          return yield* withMeteredBody(realtimeBudget, params.partner, body, realtimeRefused, (metered) => Effect.gen(function*() {
            const chunks = yield* readWithin(Stream.runCollect(metered), realtimeBodyTimeout, "HTTP_REQUEST_TIMEOUT", "a real-time body")
            const bytes = Buffer.concat(chunks)
            const invalid = (message: string) => new InvalidRequest({ issues: [{ in: "body", path: [], message }] })
            if (bytes.length === 0) return yield* invalid("the body is empty: send at least one record")
            const text = yield* Effect.try({ try: () => utf8.decode(bytes), catch: () => invalid("the body is not valid UTF-8") })
            // A byte-order mark or blank lines alone would make a job with nothing in it.
            if (text.trim() === "") return yield* invalid("the body holds no record (only a byte-order mark or blank lines)")
            const job = yield* (yield* Intake).records({
              partner: params.partner,
              format: formatOf(query.format, headers["content-type"], partner.hasFormatSpec),
              body: text,
              idempotencyKey: headers["idempotency-key"]
            })
            return accepted(job)
          }))
        })
    }),
    route({
      method: "GET", url: "/v1/ingest/jobs/:id", tags: ["ingest"], roles: ["service", "partner"], admission: "reads",
      summary: "A job: state, percent, counts that reconcile once it is done, and the first 100 line errors",
      params: Schema.Struct({ id: JobId }),
      // A partner's key reads only its own partner's jobs: another partner's is 404, as one that does not
      // exist (before stop 27 it was 403, which told a partner that a job id it held was a real job).
      authorize: ({ principal, params }) =>
        Effect.flatMap(IngestJobs.use((jobs) => jobs.partnerOf(params.id)), (partner) =>
          Option.isSome(partner) && forPartner(principal, partner.value) === true ? Effect.succeed(true) : Effect.fail(new NotFound({ detail: `no job ${params.id}` }))),
      responses: {
        200: { description: "the job", schema: Job },
        400: problemResponse("invalid id"),
        401: problemResponse("missing or unknown API key"),
        404: problemResponse("no such job (or another partner's)"),
        503: problemResponse("the jobs ledger is unavailable")
      },
      handler: ({ params }) =>
        Effect.flatMap(IngestJobs.use((jobs) => jobs.get(params.id)), (found) =>
          Option.match(found, {
            onNone: () => Effect.fail(new NotFound({ detail: `no job ${params.id}` })),
            onSome: (record) => Effect.succeed({ status: 200, body: record.job })
          }))
    }),
    route({
      method: "GET", url: "/v1/ingest/:partner/jobs", tags: ["ingest"], roles: ["service", "partner"], admission: "reads",
      summary: "A partner's jobs, newest first; page with `before` = the previous page's `next`",
      authorize: ({ principal, params }) => forPartner(principal, params.partner),
      params: PartnerParams,
      query: Schema.Struct({ limit: Schema.optionalKey(Limit), before: Schema.optionalKey(JobId) }),
      responses: {
        200: { description: "a page of jobs", schema: JobPage },
        400: problemResponse("invalid parameter"),
        401: problemResponse("missing or unknown API key"),
        403: problemResponse("another partner's jobs"),
        503: problemResponse("the jobs ledger is unavailable")
      },
      handler: ({ params, query }) =>
        Effect.gen(function*() {
          const limit = query.limit ?? 100
          // A cursor that is not one of this partner's jobs pages from nowhere: said, not answered with an
          // empty page that reads as "no older jobs" (stop 26's outside attack). Another partner's job id
          // is answered alike, so the answer tells nothing of it.
          if (query.before !== undefined) {
            const from = yield* IngestJobs.use((ledger) => ledger.partnerOf(query.before!))
            if (Option.isNone(from) || from.value !== params.partner) {
              return yield* new InvalidRequest({ issues: [{ in: "query", path: ["before"], message: `no job ${query.before} of partner ${params.partner} to page from` }] })
            }
          }
          // a job's report holds up to 100 errors of 500 characters: a page is bounded in bytes too (boundedPage.ts;
          // before stop 28, 1,000 such jobs were one 59 MB answer to the partner's own key)
          const ledger = yield* IngestJobs
          const page = yield* readBoundedPage(limit, query.before, (count, before) =>
            Effect.map(ledger.list(params.partner, { limit: count, before }), (jobs) => ({ items: jobs, more: jobs.length === count, next: jobs.at(-1)?.id ?? before })),
            (last) => last.id)
          return { status: 200, body: { jobs: page.items, ...(page.more && page.next !== undefined ? { next: page.next } : {}) } }
        })
    })
  ]
}
