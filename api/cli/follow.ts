/**
 * Follows a job to its end by polling `GET /v1/ingest/jobs/{id}`. A platform restarting (unreachable,
 * or 503 with Retry-After) is waited out for a while, since a job resumes from its checkpoint; any
 * other error answer ends the follow.
 */
import { Duration, Effect, Schedule } from "effect"
import type { Job } from "../../domain/ingest/Job.ts"
import { type ApiError, type ApiTarget, getJob } from "./client.ts"

export const isFinished = (job: Job) => job.state === "done" || job.state === "failed"

const transient = (error: ApiError) => error._tag === "ApiUnavailable" || error.status === 503 || error.status === 429

export const followJob = (
  target: ApiTarget,
  jobId: string,
  options: { readonly every?: Duration.Input; readonly onUpdate?: (job: Job) => void } = {}
) =>
  Effect.gen(function*() {
    // about a minute of a platform away before giving up
    const poll = getJob(target, jobId).pipe(
      Effect.retry({ while: transient, schedule: Schedule.spaced("1 second").pipe(Schedule.upTo({ times: 60 })) })
    )
    for (;;) {
      const job = yield* poll
      options.onUpdate?.(job)
      if (isFinished(job)) return job
      yield* Effect.sleep(options.every ?? "500 millis")
    }
  })
