/**
 * A device pipeline's watchdog: a pipeline that has work and makes no progress for `stallAfter` fails
 * with `DevicePipelineStalled`, so its supervisor (actors/runtime/KeyedJobs.ts) starts it again: a new
 * claim of its app, a new EVENTS consumer, its outbox read afresh. Two kinds of work, each with its own
 * progress: batches waiting on EVENTS (progress: a batch went through to its commit) and outbox rows
 * waiting (progress: a row was published).
 *
 * Why: the pipeline's lease is renewed by `holdWhile` whatever the pipeline does, so a pipeline waiting
 * for something that never comes (a consumer deleted under it, whose pulls nats.js retries for ever
 * without an error; an answer lost on a saturated nats-server) kept its app from every other process,
 * and from a restart, for as long as the process lived (stop 24's outside attack). Errors restart a
 * pipeline; a wait without end did not. `tributary_device_pipeline_stalls_total` counts the stalls.
 */
import { Clock, Duration, Effect, Metric, Option, Schema } from "effect"

export class DevicePipelineStalled extends Schema.TaggedError<DevicePipelineStalled>()("DevicePipelineStalled", {
  app: Schema.String,
  /** what it did not do: "take its EVENTS batches" or "publish its outbox" */
  work: Schema.String,
  /** milliseconds since its last progress at that */
  idleMs: Schema.Number
}) {}

export const pipelineStalls = Metric.counter("tributary_device_pipeline_stalls_total", {
  description: "Device pipelines given up (and started again) after having work and making no progress for DEVICE_STALL_TIMEOUT",
  incremental: true
})

/** When the pipeline last moved, per kind of work (Clock milliseconds). */
export interface Progress {
  committed: number
  published: number
}

export const makeProgress = Effect.map(Clock.currentTimeMillis, (now): Progress => ({ committed: now, published: now }))

/** Marks progress of `kind` now. */
export const progressed = (progress: Progress, kind: keyof Progress) =>
  Effect.map(Clock.currentTimeMillis, (now) => void (progress[kind] = now))

/**
 * Fails with `DevicePipelineStalled` once `app`'s pipeline has had batches on EVENTS (`eventsWaiting`)
 * or outbox rows (`outboxWaiting`) and no progress at that for `stallAfter`; looked at every quarter of
 * it. Time without work is not stalled time: a look that finds none moves the progress to then, so
 * work arriving after a quiet spell has the whole `stallAfter` (before, found by stop 25's outside
 * attack, only a look past `stallAfter` cleared the quiet time, and work arriving just before such a
 * look failed a healthy pipeline: 6 false stalls in 81 POSTs of apps flushing once a minute). The
 * clock is read after the look, which may be slow, so a commit made meanwhile counts. A look that
 * cannot tell (NATS or SQLite failing) decides nothing: the next one does, rather than idle pipelines
 * starting again all together while NATS is away.
 */
export const watchStalls = <R>(app: string, progress: Progress, options: {
  readonly stallAfter: Duration.Duration
  readonly eventsWaiting: Effect.Effect<boolean, unknown, R>
  readonly outboxWaiting: Effect.Effect<boolean, unknown, R>
}) =>
  Effect.gen(function*() {
    const stallMs = Duration.toMillis(options.stallAfter)
    const every = Math.max(1, stallMs / 4)
    const look = (kind: keyof Progress, work: string, waiting: Effect.Effect<boolean, unknown, R>) =>
      Effect.gen(function*() {
        // moved since the last look: nothing to tell, and no query (a busy pipeline asks nothing)
        if ((yield* Clock.currentTimeMillis) - progress[kind] < every) return
        const has = yield* Effect.option(waiting)
        if (Option.isNone(has)) return
        const now = yield* Clock.currentTimeMillis
        if (!has.value) {
          progress[kind] = Math.max(progress[kind], now)
          return
        }
        if (now - progress[kind] < stallMs) return
        yield* Metric.update(pipelineStalls, 1)
        return yield* new DevicePipelineStalled({ app, work, idleMs: now - progress[kind] })
      })
    yield* Metric.update(pipelineStalls, 0) // on /metrics from the start, so that an alert on it has a series
    return yield* Effect.forever(Effect.gen(function*() {
      yield* Effect.sleep(Duration.millis(every))
      yield* look("committed", "take its EVENTS batches", options.eventsWaiting)
      yield* look("published", "publish its outbox", options.outboxWaiting)
    }))
  })
