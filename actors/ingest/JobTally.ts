/**
 * A job's counters as the translator advances them, one committed batch at a time, and the
 * reconciliation that must hold once the job is done (domain/ingest/Job.ts):
 * `linesRead = linesRejected + linesAccepted` and `recordsAccepted = duplicates + recordsCommitted`.
 * `linesAccepted` is counted on its own (it is not part of the public job), so the check compares two
 * independent tallies rather than a sum with itself. Pure.
 */
import type { CommandOutcome } from "../../domain/CommandBus.ts"
import type { EntityRejection } from "../../domain/entity.ts"
import { boundedError, type JobCheckpoint, type JobCounts, type LineError, MAX_JOB_ERRORS, zeroCounts } from "../../domain/ingest/Job.ts"
import type { ProfileCommand } from "./profileBatches.ts"

export interface JobTally {
  readonly counts: JobCounts
  /** lines that produced records (none of them refused by its profile) */
  readonly linesAccepted: number
  /** the first MAX_JOB_ERRORS errors, in the order found */
  readonly errors: ReadonlyArray<LineError>
}

/** A line as the batch saw it: rejected by translation, or its number of records. */
export type BatchLine =
  | { readonly _tag: "Rejected"; readonly error: LineError }
  | { readonly _tag: "Records"; readonly line: number; readonly records: number }

/** What the tally reads of a profile command: its lines and records, not the records themselves. */
export type TalliedCommand = Pick<ProfileCommand, "lines" | "records">

/**
 * A batch's commands and answers as its tally needs them. A batch waits for its tally behind the
 * batches before it (up to TRANSLATE_IN_FLIGHT of them): holding each command's records (~10,000 per
 * batch) meanwhile was tens of MiB of live heap. The answers are outcomes: no profile's snapshot.
 */
export const forTally = (commands: ReadonlyArray<ProfileCommand>, replies: ReadonlyArray<CommandOutcome> | "duplicate") => ({
  commands: commands.map((c): TalliedCommand => ({ lines: c.lines, records: c.records })),
  replies
})

/** The records of `lines`. */
export const recordsOf = (lines: ReadonlyArray<{ readonly records: ReadonlyArray<unknown> }>) => lines.reduce((n, line) => n + line.records.length, 0)

export const empty: JobTally = { counts: zeroCounts, linesAccepted: 0, errors: [] }

/** Where a resumed job starts: every line up to its checkpoint was rejected or accepted. */
export const fromCheckpoint = (checkpoint: JobCheckpoint): JobTally => ({
  counts: checkpoint.counts,
  linesAccepted: checkpoint.counts.linesRead - checkpoint.counts.linesRejected,
  errors: checkpoint.errors
})

/** The first MAX_JOB_ERRORS errors, each cut as the ledger keeps it (boundedError): a job holds no more of them while it runs. */
const keep = (errors: ReadonlyArray<LineError>, more: ReadonlyArray<LineError>) =>
  errors.length >= MAX_JOB_ERRORS || more.length === 0 ? errors : [...errors, ...more.slice(0, MAX_JOB_ERRORS - errors.length).map(boundedError)]

/** Why a profile refused a command, for the job's error list. */
export const rejectionReason = (error: EntityRejection): string => {
  switch (error._tag) {
    case "InvalidCommand":
    case "InvalidEntity":
      return `the user profile refused the record: ${error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`
    case "CommandRefused":
      return `the user profile refused the record: ${error.reason}`
    case "CommandTooLarge":
      return `the profile's records of this batch take ${error.bytes} bytes in one command, more than the bus carries (${error.maxBytes})`
    default:
      return `the user profile refused the record (${error._tag})`
  }
}

/**
 * Adds one batch: its lines, then each profile command's answer (`replies[i]` for `commands[i]`; all
 * `"duplicate"` when the batch was not sent because the same file was already loaded). Accepted and
 * unchanged: its records were all there already (duplicates); accepted otherwise: committed;
 * rejected: its records are not accepted and its lines count as rejected with the reason. Any other
 * answer is a bug of the caller (it retries those before tallying).
 */
export const addBatch = (
  tally: JobTally,
  lines: ReadonlyArray<BatchLine>,
  commands: ReadonlyArray<TalliedCommand>,
  replies: ReadonlyArray<CommandOutcome> | "duplicate",
  /** records not sent since they change nothing (dated before their segment's last replacement): duplicates */
  stale = 0
): JobTally => {
  let { linesRead, recordsAccepted, linesRejected, duplicates, recordsCommitted } = tally.counts
  duplicates += stale
  let linesAccepted = tally.linesAccepted
  const errors: Array<LineError> = []
  for (const line of lines) {
    linesRead++
    if (line._tag === "Rejected") {
      linesRejected++
      errors.push(line.error)
    } else {
      linesAccepted++
      recordsAccepted += line.records
    }
  }
  const refused = new Set<number>()
  commands.forEach((command, i) => {
    const reply = replies === "duplicate" ? "duplicate" : replies[i]
    if (reply === "duplicate" || (reply?._tag === "Accepted" && reply.outcome === "unchanged")) {
      duplicates += command.records
    } else if (reply?._tag === "Accepted") {
      recordsCommitted += command.records
    } else if (reply?._tag === "Rejected") {
      recordsAccepted -= command.records
      for (const line of command.lines) {
        if (refused.has(line)) continue
        refused.add(line)
        linesAccepted--
        linesRejected++
        errors.push({ line, reason: rejectionReason(reply.error) })
      }
    } else {
      throw new Error(`a profile command was tallied without an answer (${reply?._tag ?? "none"})`)
    }
  })
  return {
    counts: { linesRead, recordsAccepted, linesRejected, duplicates, recordsCommitted },
    linesAccepted,
    errors: keep(tally.errors, errors)
  }
}

/** Why the tally does not reconcile, if it does not. */
export const unreconciled = (tally: JobTally): string | undefined => {
  const c = tally.counts
  if (c.linesRead !== c.linesRejected + tally.linesAccepted) {
    return `lines read ${c.linesRead} ≠ rejected ${c.linesRejected} + accepted ${tally.linesAccepted}`
  }
  if (c.recordsAccepted !== c.duplicates + c.recordsCommitted) {
    return `records accepted ${c.recordsAccepted} ≠ duplicates ${c.duplicates} + committed ${c.recordsCommitted}`
  }
  return undefined
}

/** The checkpoint after a tally: at `line`, `bytes` into the input. */
export const checkpointOf = (tally: JobTally, line: number, bytes: number): JobCheckpoint => ({
  line,
  bytes,
  counts: tally.counts,
  errors: tally.errors
})
