/**
 * Progress where people wait: one line for an upload (bytes sent of the total, %, MB/s, ETA) and one
 * for a job (state, %, counts). On a terminal the line is redrawn in place; in a pipe or a log file
 * (not a TTY) a plain line is written every few seconds instead, so logs stay readable.
 */
import type { Job } from "../../domain/ingest/Job.ts"

const MB = 1_000_000

const count = (n: number) => n.toLocaleString("en-US")

export const formatBytes = (n: number): string =>
  n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : n >= MB ? `${(n / MB).toFixed(1)} MB` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} kB` : `${n} B`

/** `m:ss` (or `h:mm:ss`) */
export const formatDuration = (seconds: number): string => {
  if (!Number.isFinite(seconds) || seconds < 0) return "--:--"
  const s = Math.round(seconds)
  const two = (n: number) => String(n).padStart(2, "0")
  return s >= 3600 ? `${Math.floor(s / 3600)}:${two(Math.floor((s % 3600) / 60))}:${two(s % 60)}` : `${Math.floor(s / 60)}:${two(s % 60)}`
}

const bar = (fraction: number, width = 24) => {
  const full = Math.max(0, Math.min(width, Math.round(fraction * width)))
  return `[${"#".repeat(full)}${".".repeat(width - full)}]`
}

/** `upload [########........]  33%  96.0 MB / 285.3 MB  41.2 MB/s  ETA 0:05` */
export const uploadLine = (sent: number, total: number, elapsedMs: number): string => {
  const fraction = total === 0 ? 1 : sent / total
  const rate = elapsedMs > 0 ? sent / (elapsedMs / 1000) : 0
  const eta = rate > 0 ? (total - sent) / rate : Number.NaN
  return `upload ${bar(fraction)} ${(fraction * 100).toFixed(0).padStart(3)}%  ${formatBytes(sent)} / ${formatBytes(total)}  ${(rate / MB).toFixed(1)} MB/s  ETA ${formatDuration(eta)}`
}

/** `job 0190… translating [####....]  25%  lines 250,000  accepted 237,500  rejected 12,500  committed 200,000` */
export const jobLine = (job: Job): string =>
  `job ${job.id} ${job.state.padEnd(11)} ${bar(job.percent / 100)} ${job.percent.toFixed(0).padStart(3)}%  ` +
  `lines ${count(job.linesRead)}  accepted ${count(job.recordsAccepted)}  rejected ${count(job.linesRejected)}  committed ${count(job.recordsCommitted)}`

/** Where progress goes: stderr, a terminal or not. */
export interface ProgressOutput {
  readonly isTTY?: boolean | undefined
  readonly write: (text: string) => unknown
}

/** Draws one progress line at a time: in place on a terminal, a plain line every `plainEveryMs` otherwise. */
export class ProgressView {
  private lastDrawn = Number.NEGATIVE_INFINITY
  private drawnInPlace = false
  private readonly output: ProgressOutput
  private readonly plainEveryMs: number

  constructor(output: ProgressOutput, plainEveryMs = 2_000) {
    this.output = output
    this.plainEveryMs = plainEveryMs
  }

  /** Shows `line`; `force` draws it whatever the time since the last one (a final state). */
  update(line: string, force = false): void {
    const now = performance.now()
    if (this.output.isTTY) {
      if (!force && now - this.lastDrawn < 100) return
      this.output.write(`\r\x1b[2K${line}`)
      this.drawnInPlace = true
    } else {
      if (!force && now - this.lastDrawn < this.plainEveryMs) return
      this.output.write(`${line}\n`)
    }
    this.lastDrawn = now
  }

  /** Ends the line drawn in place, so what follows starts on its own line. */
  end(): void {
    if (this.drawnInPlace) this.output.write("\n")
    this.drawnInPlace = false
    this.lastDrawn = Number.NEGATIVE_INFINITY
  }
}
