/**
 * What a partner sees in its folder at the file doors: its uploads, from the jobs ledger (not from a
 * disk folder: uploads are kept by Uploads, and only until their job is done). One entry per file
 * name, the newest upload of that name; a file uploaded without a name (HTTP) shows as its job id.
 * Real-time records are no files and are not shown.
 */
import { Effect } from "effect"
import { IngestJobs } from "../../domain/ingest/Job.ts"

export interface FolderEntry {
  readonly name: string
  readonly bytes: number
  /** when it was uploaded (ms since the epoch) */
  readonly modifiedMillis: number
  readonly jobId: string
}

/** The listing shows at most this many uploads, the newest. */
export const MAX_LISTED = 1_000

export const listFolder = (partner: string): Effect.Effect<ReadonlyArray<FolderEntry>, never, IngestJobs> =>
  IngestJobs.use((jobs) => jobs.list(partner, { limit: MAX_LISTED })).pipe(
    Effect.map((jobs) => {
      const entries = new Map<string, FolderEntry>()
      for (const job of jobs) {
        if (job.source === "realtime") continue
        const name = job.fileName ?? job.id
        if (!entries.has(name)) entries.set(name, { name, bytes: job.bytes, modifiedMillis: Date.parse(job.createdAt), jobId: job.id })
      }
      return [...entries.values()]
    }),
    Effect.tapError((error) => Effect.logWarning("file doors: the folder could not be listed", error)),
    Effect.orElseSucceed((): ReadonlyArray<FolderEntry> => [])
  )

/** The entry of this name, if the partner uploaded one. */
export const findInFolder = (partner: string, name: string) =>
  Effect.map(listFolder(partner), (entries) => entries.find((entry) => entry.name === name))
