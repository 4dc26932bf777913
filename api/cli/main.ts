#!/usr/bin/env -S node --experimental-strip-types --no-warnings
/**
 * `npx tributary`: the command line for partners and operators.
 *
 *   tributary upload <partner> <file>   streams the file with a progress bar, follows its job to the end, prints its report
 *   tributary job <jobId>               prints a job's report (`--follow`: until it ends)
 *
 * Progress goes to stderr, the report (or `--json`: the job as JSON) to stdout. Exit status: 0 when the
 * job is done (or, for `job`, not failed), 1 when it failed, 2 on an HTTP error (its problem+json detail
 * is printed) or an unreachable API.
 */
// sub-path imports: the package index loads every Node adapter, doubling start-up time
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeServices from "@effect/platform-node/NodeServices"
import { Config, Effect } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import type { Job } from "../../domain/ingest/Job.ts"
import type { ApiError, ApiTarget } from "./client.ts"
import { getJob } from "./client.ts"
import { followJob, isFinished } from "./follow.ts"
import { jobLine, ProgressView, uploadLine } from "./progress.ts"
import { jobReport } from "./report.ts"
import { uploadFile } from "./upload.ts"

const exitCodes = { done: 0, failed: 1, error: 2 } as const

const url = Flag.String("url").pipe(
  Flag.withDescription("the API's base URL (env TRIBUTARY_URL; default http://127.0.0.1:$PORT, PORT defaulting to 8080)"),
  Flag.withFallbackConfig(Config.String("TRIBUTARY_URL")),
  Flag.withDefault(`http://127.0.0.1:${process.env.PORT ?? 8080}`)
)
const key = Flag.String("key").pipe(
  Flag.withDescription("API key: the partner's own (role partner:<id>) or an admin key (env TRIBUTARY_API_KEY)"),
  Flag.withFallbackConfig(Config.String("TRIBUTARY_API_KEY"))
)
const json = Flag.Boolean("json").pipe(Flag.withDescription("print the final job as JSON on stdout instead of the report"), Flag.withDefault(false))

const target = (options: { readonly url: string; readonly key: string }): ApiTarget => ({ url: options.url.replace(/\/+$/, ""), key: options.key })

const printJob = (job: Job, asJson: boolean) => Effect.sync(() => process.stdout.write(`${asJson ? JSON.stringify(job, null, 2) : jobReport(job)}\n`))

const exitFor = (job: Job) => job.state === "failed" ? exitCodes.failed : exitCodes.done

/** An HTTP error or an unreachable API: its detail on stderr, exit status 2. */
const reportError = (error: ApiError) =>
  Effect.sync(() => {
    process.stderr.write(`error: ${error.summary}\n`)
    process.exitCode = exitCodes.error
  })

/** Follows a job on stderr (in place on a terminal), then prints it and sets the exit status. */
const followAndReport = (api: ApiTarget, jobId: string, asJson: boolean) =>
  Effect.gen(function*() {
    const view = new ProgressView(process.stderr)
    const job = yield* followJob(api, jobId, { onUpdate: (j) => view.update(jobLine(j), isFinished(j)) })
    view.end()
    yield* printJob(job, asJson)
    process.exitCode = exitFor(job)
  })

const upload = Command.make("upload", {
  partner: Argument.String("partner").pipe(Argument.withDescription("the partner's id (its slug)")),
  file: Argument.String("file").pipe(Argument.withDescription("the file to send, as it is: gzip or not, any size")),
  url,
  key,
  format: Flag.Literals("format", ["partner", "loader"] as const).pipe(
    Flag.withDescription("partner: the partner's own format (its format spec); loader: loader-format JSON Lines"),
    Flag.withDefault("partner" as const)
  ),
  follow: Flag.Boolean("follow").pipe(
    Flag.withDescription("follow the job to its end and print its report (--no-follow: print the job id once the file is stored)"),
    Flag.withDefault(true)
  ),
  json
}, (options) =>
  Effect.gen(function*() {
    const api = target(options)
    const view = new ProgressView(process.stderr)
    const started = performance.now()
    const accepted = yield* uploadFile(api, {
      partner: options.partner,
      file: options.file,
      format: options.format,
      onProgress: (sent, total) => view.update(uploadLine(sent, total, performance.now() - started), sent === total)
    })
    view.end()
    process.stderr.write(`stored: job ${accepted.jobId}\n`)
    if (!options.follow) {
      const job = accepted.job ?? (yield* getJob(api, accepted.jobId))
      yield* printJob(job, options.json)
      return
    }
    yield* followAndReport(api, accepted.jobId, options.json)
  }).pipe(Effect.catch(reportError))
).pipe(Command.withDescription("Streams a file to POST /v1/ingest/{partner}/files with a progress bar, then follows its job to the end and prints its report."))

const job = Command.make("job", {
  jobId: Argument.String("jobId").pipe(Argument.withDescription("the job's id, as `upload` printed it")),
  url,
  key,
  follow: Flag.Boolean("follow").pipe(Flag.withDescription("follow the job until it is done or failed"), Flag.withDefault(false)),
  json
}, (options) =>
  Effect.gen(function*() {
    const api = target(options)
    if (options.follow) return yield* followAndReport(api, options.jobId, options.json)
    const found = yield* getJob(api, options.jobId)
    yield* printJob(found, options.json)
    process.exitCode = exitFor(found)
  }).pipe(Effect.catch(reportError))
).pipe(Command.withDescription("Prints an ingestion job's report (GET /v1/ingest/jobs/{id})."))

export const tributary = Command.make("tributary").pipe(
  Command.withDescription("Tributary's command line: send partner files and follow their jobs."),
  Command.withSubcommands([upload, job])
)

if (import.meta.main) {
  NodeRuntime.runMain(Command.run(tributary, { version: "0.1.0" }).pipe(Effect.provide(NodeServices.layer)))
}
