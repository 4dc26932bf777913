/**
 * One ingestion job, from its input to `done` or `failed` (issue 7 items 7 and 8). The input (the
 * stored upload, or a real-time body) is translated line by line (`Translate`), the lines are taken
 * in batches, each batch's records grouped by profile into one `Apply` per profile and sent with
 * `CommandBus.sendBatch` (one bus message per shard), at most `inFlight` batches at once: the input
 * is read only as fast as profiles commit. Batches are tallied in line order as their answers come,
 * so a checkpoint never passes a line whose records (or an earlier line's) are not committed; a job
 * resumed after a crash starts after its checkpoint and its profiles recognise what they already hold.
 *
 * The end: `done` once the input ended and the counts reconcile (a violation is a bug: logged, and the
 * job failed); `failed` at the line where the input broke (a truncated gzip), keeping what it
 * committed; `failed` when the upload cannot be read. Profiles that cannot answer (the bus or store
 * away) fail the run, not the job: the translator restarts and resumes from the checkpoint.
 */
import { Effect, Option, Ref, Stream } from "effect"
import type { Duration } from "effect"
import type { CommandBus, CommandOutcome } from "../../domain/CommandBus.ts"
import { notAllowed } from "../../domain/ingest/FormatSpec.ts"
import { IngestJobs, type JobRecord, type LineError, MAX_JOB_ERRORS } from "../../domain/ingest/Job.ts"
import { Uploads, type UploadsError } from "../../domain/ingest/Uploads.ts"
import * as JobTally from "./JobTally.ts"
import type { PartnerSettings } from "./partnerSettings.ts"
import { profileCommands, type RecordsLine } from "./profileBatches.ts"
import { ReplaceIndex, type ReplaceIndexError } from "../../domain/ingest/ReplaceIndex.ts"
import { committedBy, datedAtLeast, listedBy, namedByLayout, notStale, removeUnlisted, segmentChanges } from "./replaceMode.ts"
import { type ProfilesUnavailable, sendAll } from "./sendCommands.ts"
import type { Translate, TranslatedLine } from "./Translate.ts"

export interface JobOptions {
  /** lines per batch of profile commands */
  readonly batchLines: number
  /** batches sent and not yet answered */
  readonly inFlight: number
  /** save a checkpoint at least every this many lines */
  readonly checkpointLines: number
  /** how long a batch waits for its profiles' answers before it is sent again */
  readonly commandTimeout: Duration.Input
  /** delete the upload once its job is done or failed */
  readonly deleteUploads: boolean
  /** waits for the partner's real-time job in flight, if any, to end (a replacement, before its removals) */
  readonly realtimeSettled?: Effect.Effect<void> | undefined
  /**
   * The partner's allowedSegments as they are now, read again for each batch: a list narrowed while a
   * job translates applies from its next batch (before, found by the third attack of stop 27, a job kept
   * the list it started with: a PATCH narrowing it at 40,000 of 60,000 records let the other 20,000 in).
   */
  readonly allowedSegmentsNow?: Effect.Effect<ReadonlySet<string> | undefined> | undefined
}

/** Where a job's bytes come from: its stored upload, or the body of its real-time message. */
export type JobInput = { readonly _tag: "Upload" } | { readonly _tag: "Body"; readonly body: string; readonly receivedAt: string }

type Marked = { readonly _tag: "Line"; readonly line: TranslatedLine } | { readonly _tag: "Broken"; readonly line: number; readonly reason: string }

/** A batch once its profiles answered: what the tally needs. */
interface SentBatch {
  readonly lines: ReadonlyArray<JobTally.BatchLine>
  readonly commands: ReadonlyArray<JobTally.TalliedCommand>
  readonly replies: ReadonlyArray<CommandOutcome> | "duplicate"
  readonly lastLine: number
  readonly offset: number
  readonly broken: { readonly line: number; readonly reason: string } | undefined
  /** records not sent: dated before their segment's last replacement */
  readonly stale: number
}

/** The job's public percent at `offset` bytes of `bytes`; 100 only once done. */
const percentAt = (offset: number, bytes: number) => bytes <= 0 ? 0 : Math.min(99.9, Math.floor((offset / bytes) * 1000) / 10)

/**
 * Runs `record`'s job to its end (or until the run fails), from its checkpoint. `settings` is the
 * partner's configuration as read now; `translate` turns bytes into lines.
 */
export const runJob = (record: JobRecord, input: JobInput, settings: PartnerSettings, translate: Translate, options: JobOptions) =>
  Effect.gen(function*() {
    const jobs = yield* IngestJobs
    const uploads = yield* Uploads
    const { job } = record
    const jobId = job.id
    const log = (message: string, fields: Record<string, unknown> = {}) => Effect.logInfo(message, { job: jobId, partner: job.partner, ...fields })

    // The line to blame (where the input broke) is the last error, kept even past MAX_JOB_ERRORS.
    const finishFailed = (failure: string, tally: JobTally.JobTally, line: number, offset: number, blame?: LineError) =>
      jobs.finish(jobId, {
        state: "failed",
        checkpoint: JobTally.checkpointOf(blame === undefined ? tally : { ...tally, errors: [...tally.errors.slice(0, MAX_JOB_ERRORS - 1), blame] }, line, offset),
        failure
      }).pipe(Effect.andThen(log("ingest job failed", { failure })))

    // A partner deleted while its files waited: none of them loads (a replacement would load as an increment).
    if (!settings.exists) return yield* finishFailed(`partner ${job.partner} does not exist`, JobTally.empty, 0, 0)
    if (record.format === "partner" && settings.translation === undefined) {
      return yield* finishFailed(settings.missing ?? `partner ${job.partner} has no format spec: send loader-format JSON Lines`, JobTally.empty, 0, 0)
    }
    const translation = record.format === "loader" ? { format: "loader" as const } : settings.translation!

    // The same file already loaded for this partner: every record it gives is a duplicate; nothing is sent.
    const sameFileDone = job.source === "realtime"
      ? false
      : Option.isSome(Option.filter(yield* jobs.doneWithDigest(job.partner, job.digest), (done) => done.id !== jobId))

    const start = Option.getOrUndefined(record.checkpoint)
    const fromLine = start?.line ?? 0
    const tally = yield* Ref.make(start === undefined ? JobTally.empty : JobTally.fromCheckpoint(start))
    const position = yield* Ref.make({ line: fromLine, offset: start?.bytes ?? 0, sinceCheckpoint: 0 })

    const bytes: Stream.Stream<Uint8Array, UploadsError> = input._tag === "Body"
      ? Stream.succeed(new TextEncoder().encode(input.body))
      : uploads.read(record.uploadId)
    // Records without a time of their own take the moment their input was received.
    const receivedAt = input._tag === "Body" ? input.receivedAt : job.createdAt
    yield* jobs.checkpoint(jobId, JobTally.checkpointOf(yield* Ref.get(tally), fromLine, start?.bytes ?? 0), percentAt(start?.bytes ?? 0, job.bytes))
    yield* log(start === undefined ? "ingest job started" : "ingest job resumed", { fromLine, sameFileDone })

    const context = { partner: job.partner, jobId, digest: job.digest, defaultTtlSeconds: settings.defaultTtlSeconds }

    // A replace-mode partner's jobs keep the index of what it holds; its files also list what they name.
    const replaceMode = settings.mode === "replace"
    const replacing = replaceMode && job.source !== "realtime" && !sameFileDone
    const index = yield* ReplaceIndex
    const columns = replacing ? namedByLayout(translation) : []
    // Another job of a replace-mode partner: its records dated before their segment's last replacement
    // change nothing (that file was the partner's list as of then), whether the replacement had a
    // membership of theirs to remove or not (stop 24's outside attack: a late add of a user it had
    // removed stayed out, of one it never knew went in). Each segment is looked up once a job (-Infinity:
    // never replaced).
    const notBefore = new Map<string, number>()
    const watermarks = (lines: ReadonlyArray<RecordsLine>) =>
      Effect.gen(function*() {
        const unknown = [...new Set(lines.flatMap((line) => line.records.map((r) => r.segmentId)))].filter((segment) => !notBefore.has(segment))
        if (unknown.length === 0) return notBefore
        const found = yield* index.replacedAt(job.partner, unknown)
        for (const segment of unknown) notBefore.set(segment, found.get(segment) ?? -Infinity)
        return notBefore
      })
    let columnsNamed = false

    const send = (group: ReadonlyArray<Marked>): Effect.Effect<SentBatch, ProfilesUnavailable | ReplaceIndexError, CommandBus> =>
      Effect.gen(function*() {
        const lines: Array<JobTally.BatchLine> = []
        const withRecords: Array<RecordsLine> = []
        let lastLine = 0
        let offset = 0
        let broken: SentBatch["broken"] = undefined
        const allowed = options.allowedSegmentsNow === undefined ? settings.allowedSegments : yield* options.allowedSegmentsNow
        for (const item of group) {
          if (item._tag === "Broken") {
            broken = { line: item.line, reason: item.reason }
            continue
          }
          const line = item.line
          lastLine = line.line
          offset = line.offset
          const outside = line._tag === "Records" && allowed !== undefined ? line.records.find((r) => !allowed.has(r.segmentId)) : undefined
          if (line._tag === "Rejected") {
            lines.push({ _tag: "Rejected", error: line.error })
          } else if (outside !== undefined) {
            lines.push({ _tag: "Rejected", error: { line: line.line, column: "segmentId", reason: notAllowed(outside.segmentId) } })
          } else {
            lines.push({ _tag: "Records", line: line.line, records: line.records.length })
            if (line.records.length > 0) withRecords.push(line)
          }
        }
        const first = group.find((item): item is Extract<Marked, { _tag: "Line" }> => item._tag === "Line")
        const current = replacing
          ? datedAtLeast(withRecords, receivedAt)
          : replaceMode
          ? notStale(withRecords, yield* watermarks(withRecords))
          : withRecords
        const stale = current === withRecords ? 0 : JobTally.recordsOf(withRecords) - JobTally.recordsOf(current)
        const commands = current.length === 0 ? [] : profileCommands(current, context, { fromLine: first?.line.line ?? 0, toLine: lastLine })
        const changes = replaceMode ? commands.map(segmentChanges) : []
        if (replacing) {
          yield* index.listed(jobId, listedBy(commands, changes))
          if (!columnsNamed && columns.length > 0 && lines.some((line) => line._tag === "Records")) {
            columnsNamed = true
            yield* index.named(jobId, columns)
          }
        }
        const replies = sameFileDone ? "duplicate" as const : commands.length === 0 ? [] : yield* sendAll(jobId, commands.map((c) => c.command), options.commandTimeout)
        if (replaceMode && replies !== "duplicate") yield* index.committed(job.partner, committedBy(commands, changes, replies))
        return { lines, ...JobTally.forTally(commands, replies), lastLine, offset, broken, stale }
      })

    const tallied = (sent: SentBatch) =>
      Effect.gen(function*() {
        const next = JobTally.addBatch(yield* Ref.get(tally), sent.lines, sent.commands, sent.replies, sent.stale)
        yield* Ref.set(tally, next)
        const at = yield* Ref.updateAndGet(position, (p) =>
          sent.lines.length === 0 ? p : { line: sent.lastLine, offset: sent.offset, sinceCheckpoint: p.sinceCheckpoint + sent.lines.length })
        if (at.sinceCheckpoint >= options.checkpointLines) {
          yield* jobs.checkpoint(jobId, JobTally.checkpointOf(next, at.line, at.offset), percentAt(at.offset, job.bytes))
          yield* Ref.set(position, { ...at, sinceCheckpoint: 0 })
        }
        return sent.broken
      })

    const outcome = yield* translate(translation, bytes, { receivedAt, fromLine }).pipe(
      Stream.map((line): Marked => ({ _tag: "Line", line })),
      Stream.catchTag("InputBroken", (broken) => Stream.succeed<Marked>({ _tag: "Broken", line: broken.line, reason: broken.reason })),
      Stream.grouped(options.batchLines),
      Stream.mapEffect(send, { concurrency: options.inFlight }),
      Stream.mapEffect(tallied),
      Stream.runFold(() => undefined as SentBatch["broken"], (found, broken) => found ?? broken),
      Effect.map((broken) => ({ _tag: "Ended" as const, broken })),
      Effect.catchTag("UploadsError", (error) => Effect.succeed({ _tag: "Unreadable" as const, error }))
    )

    const final = yield* Ref.get(tally)
    const at = yield* Ref.get(position)
    if (outcome._tag === "Unreadable") {
      yield* finishFailed(`the upload could not be read (${outcome.error.operation}): ${String(outcome.error.cause)}`, final, at.line, at.offset)
    } else if (outcome.broken !== undefined) {
      const { line, reason } = outcome.broken
      yield* finishFailed(`the input broke at line ${line}: ${reason}`, final, at.line, at.offset, { line, reason })
    } else {
      const wrong = JobTally.unreconciled(final)
      if (wrong !== undefined) {
        yield* Effect.logError("ingest job does not reconcile: a bug; the job is failed", { job: jobId, partner: job.partner, wrong, counts: final.counts })
        yield* finishFailed(`the counts do not reconcile (${wrong})`, final, at.line, at.offset)
      } else {
        if (replacing) {
          // Every line is in: a replacement checkpoints its end before its removals, so its percent does not
          // sit at its last checkpoint meanwhile, and a crash among them resumes them, not the file; from
          // now on the partner's records dated before it change nothing in its segments.
          yield* jobs.checkpoint(jobId, JobTally.checkpointOf(final, at.line, at.offset), 99.9)
          yield* index.replaced(job.partner, jobId, Date.parse(receivedAt))
          if (options.realtimeSettled !== undefined) yield* options.realtimeSettled
        }
        const removedUnlisted = replacing
          ? yield* removeUnlisted({ partner: job.partner, jobId, digest: job.digest, time: receivedAt, pageSize: options.batchLines, timeout: options.commandTimeout })
          : undefined
        yield* jobs.finish(jobId, { state: "done", checkpoint: JobTally.checkpointOf(final, at.line, job.bytes), removedUnlisted })
        yield* log("ingest job done", { ...final.counts, removedUnlisted })
      }
    }
    if (replacing) yield* index.forget(jobId)
    if (options.deleteUploads && input._tag === "Upload") {
      yield* uploads.remove(record.uploadId).pipe(Effect.catch((error) => Effect.logWarning("could not delete a finished job's upload", { job: jobId, error })))
    }
  })
