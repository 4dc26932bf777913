/** A finished (or current) job as a person reads it: what was read, kept, rejected and why, and whether it reconciles. */
import type { Job } from "../../domain/ingest/Job.ts"
import { formatBytes } from "./progress.ts"

const count = (n: number) => n.toLocaleString("en-US")

/** Shown of the job's first errors (the job keeps up to 100). */
const shownErrors = 10

/** Whether the job's counts reconcile: every accepted record is a duplicate or committed, and no more lines were rejected than read. */
export const reconciles = (job: Job): boolean =>
  job.recordsAccepted === job.duplicates + job.recordsCommitted && job.linesRejected <= job.linesRead

export const jobReport = (job: Job): string => {
  const lines = [
    `job ${job.id} (${job.partner}, ${job.source}${job.fileName ? `, ${job.fileName}` : ""}, ${formatBytes(job.bytes)}, sha256 ${job.digest.slice(0, 16)}…)`,
    `  state            ${job.state}${job.state === "done" || job.state === "failed" ? "" : ` (${job.percent.toFixed(0)}%)`}`,
    ...(job.failure ? [`  failure          ${job.failure}`] : []),
    `  lines read       ${count(job.linesRead)}`,
    `  records accepted ${count(job.recordsAccepted)}`,
    `  lines rejected   ${count(job.linesRejected)}`,
    `  duplicates       ${count(job.duplicates)}`,
    `  committed        ${count(job.recordsCommitted)}`,
    `  reconciliation   accepted ${count(job.recordsAccepted)} = duplicates ${count(job.duplicates)} + committed ${count(job.recordsCommitted)}: ` +
    (reconciles(job) ? "holds" : job.state === "done" ? "DOES NOT HOLD" : "not yet (job not done)")
  ]
  if (job.errors.length > 0) {
    lines.push(`  first errors (${job.errors.length < job.linesRejected ? `${job.errors.length} kept of ${count(job.linesRejected)}` : count(job.errors.length)}):`)
    for (const e of job.errors.slice(0, shownErrors)) lines.push(`    line ${e.line}${e.column === undefined ? "" : `, column ${e.column}`}: ${e.reason}`)
    if (job.errors.length > shownErrors) lines.push(`    … ${job.errors.length - shownErrors} more (GET /v1/ingest/jobs/${job.id})`)
  }
  return lines.join("\n")
}
