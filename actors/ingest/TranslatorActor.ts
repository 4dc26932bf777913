/**
 * A partner's translator (issue 7 item 5): while this process holds the partner's lease, a supervisor
 * of two actors takes the partner's INGEST messages.
 *
 * - The files actor runs the partner's file jobs one at a time, oldest first, from the jobs ledger
 *   (`IngestJobs.unfinished`): at every (re)start it resumes what is unfinished from its checkpoint,
 *   and each FileJob message only wakes it. The message is held (its ack deadline kept moving) and
 *   acknowledged once its job is done or failed.
 * - The realtime actors run real-time POSTs, each a small job of its own carried by its message, so
 *   a long file never delays them; each message is acknowledged once its job is done or failed. There
 *   are `realtimeConcurrency` of them (8), each message going to the one with the fewest waiting: a job
 *   spends most of its time waiting for its profiles' shards, behind whatever they have queued (a file's
 *   batches), so one actor made a partner's real-time POSTs wait for each other's shard round trips.
 *   Together they run at most `realtimeBudget` characters of bodies (REALTIME_MAX_BYTES): small POSTs
 *   side by side, a full-size one alone.
 *
 * Each actor restarts on its own after a failure (Supervisor policy); a job whose run crashed
 * `maxCrashes` times is failed with the crash as its reason rather than retried for ever. An actor
 * that keeps failing escalates: the whole partner translator fails and starts again after a backoff.
 * Either way only this partner is affected. Stopping (lease handed back or lost, process ending)
 * interrupts the running job — it resumes at its checkpoint with the partner's next holder — and
 * leaves unsettled messages on INGEST for it.
 */
import { Cause, Deferred, Effect, Option, Schema, Semaphore, Stream } from "effect"
import type { CommandBus } from "../../domain/CommandBus.ts"
import type { EventStore } from "../../domain/EventStore.ts"
import { ReplaceIndex } from "../../domain/ingest/ReplaceIndex.ts"
import type { Uploads } from "../../domain/ingest/Uploads.ts"
import type { EntityReadModel } from "../../projections/EntityReadModel.ts"
import { type RealtimeRecords, realtimeJob } from "../../domain/ingest/realtimeJob.ts"
import { realtimeDigest } from "../../infra/ingest/realtimeDigest.ts"
import { type IngestDelivery, IngestQueue } from "../../domain/ingest/IngestQueue.ts"
import { IngestJobs, type JobRecord } from "../../domain/ingest/Job.ts"
import { zeroCounts } from "../../domain/ingest/Job.ts"
import * as Actor from "../runtime/Actor.ts"
import * as Supervisor from "../runtime/Supervisor.ts"
import { readPartnerSettings } from "./partnerSettings.ts"
import { type JobInput, type JobOptions, runJob } from "./runJob.ts"
import type { Translate } from "./Translate.ts"

export interface TranslatorOptions extends JobOptions {
  readonly translate: Translate
  /** a job whose run crashed (a defect) this many times is failed; default 3 */
  readonly maxCrashes?: number
  /** how each actor restarts; default Supervisor.defaultPolicy */
  readonly supervision?: Supervisor.SupervisionPolicy
  /** real-time messages waiting for the realtime actors, all together (backpressure on INGEST beyond); default 64 */
  readonly realtimeMailbox?: number
  /** real-time jobs of one partner running at once at most; default 8 */
  readonly realtimeConcurrency?: number
  /** characters of real-time bodies of one partner running at once at most (a larger body runs alone); default 1 MiB */
  readonly realtimeBudget?: number
}

/** What a job's run uses. */
type RunServices = IngestJobs | Uploads | CommandBus | EventStore | EntityReadModel | ReplaceIndex

/** The files actor's only message: look for unfinished file jobs. */
interface Scan {
  readonly _tag: "Scan"
}
interface Realtime {
  readonly _tag: "Realtime"
  readonly delivery: IngestDelivery
  readonly message: RealtimeRecords
}

/** The partner's INGEST messages stopped (the stream ended): its translator starts again. */
export class TranslatorStopped extends Schema.TaggedError<TranslatorStopped>()("TranslatorStopped", {
  partner: Schema.String,
  cause: Schema.Defect()
}) {}

const ended = (state: string) => state === "done" || state === "failed"

/**
 * One session of `partner`'s translator: its two actors fed from INGEST until it is interrupted, its
 * messages stop, or an actor gives up.
 */
export const partnerTranslator = (partner: string, options: TranslatorOptions) =>
  Effect.gen(function*() {
    const queue = yield* IngestQueue
    const jobs = yield* IngestJobs
    const index = yield* ReplaceIndex
    const maxCrashes = options.maxCrashes ?? 3
    const stopping = yield* Deferred.make<void>()
    const { escalate, failed } = yield* Supervisor.escalationSignal
    /** FileJob messages held until their job ends, by job id. */
    const held = new Map<string, IngestDelivery>()
    /** Crashes of a job's runs in this session, by job id. */
    const crashes = new Map<string, number>()

    /** Runs until stopping; then gives up quietly (the job resumes with the partner's next holder). */
    const untilStopping = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.raceFirst(Effect.asSome(effect), Effect.as(Deferred.await(stopping), Option.none<A>()))

    const settleHeld = (jobId: string) =>
      Effect.suspend(() => {
        const delivery = held.get(jobId)
        held.delete(jobId)
        return delivery === undefined ? Effect.void : delivery.ack
      })

    // A message held just after its job ended (it arrived while the job finished) is settled at the next scan.
    const settleEnded = Effect.forEach([...held.keys()], (jobId) =>
      Effect.flatMap(jobs.get(jobId), (record) => Option.isSome(record) && ended(record.value.job.state) ? settleHeld(jobId) : Effect.void), { discard: true })

    /** A run that crashed too often: the job ends failed with the crash as its reason (and a replacement's list goes). */
    const failCrashed = (record: JobRecord, cause: string) =>
      jobs.finish(record.job.id, {
        state: "failed",
        checkpoint: Option.getOrElse(record.checkpoint, () => ({ line: 0, bytes: 0, counts: zeroCounts, errors: [] })),
        failure: `the translator crashed ${maxCrashes} times on this job: ${cause}`
      }).pipe(
        Effect.andThen(index.forget(record.job.id)),
        Effect.andThen(Effect.logError("ingest job failed: its translator keeps crashing", { job: record.job.id, partner, cause }))
      )

    // Real-time jobs run side by side within a budget of body characters (REALTIME_MAX_BYTES by default):
    // small POSTs together, a full-size body alone, as all did before. Each job takes its body's size of
    // the turn, through the gate, so in arrival order (effect's Semaphore lets a small taker pass a large
    // waiter, and a large body would wait behind a stream of small ones). Without the budget, eight 1 MiB
    // bodies of one partner at once filled the profile shards ahead of every other partner (their POSTs
    // waited 45–90 s) and took RSS to 1.5 GB (stop 25's outside attack).
    // A replacement, its time set as its segments' watermark, takes the whole turn once before it looks
    // for what to remove: a real-time job that read the watermark before it was set has committed by then,
    // and the removals see what it added (stop 24's second outside attack: 8,000 adds dated before a
    // replacement, committed by a real-time job after its removals had passed their segment, stayed).
    const lanes = Math.max(1, options.realtimeConcurrency ?? 8)
    const budget = Math.max(1, options.realtimeBudget ?? 1_048_576)
    const realtimeTurn = yield* Semaphore.make(budget)
    const gate = yield* Semaphore.make(1)
    const realtimeSettled = gate.withPermits(1)(realtimeTurn.withPermits(budget)(Effect.void))
    const realtimeRun = <A, E, R>(size: number, job: Effect.Effect<A, E, R>) =>
      Effect.scoped(Effect.andThen(gate.withPermits(1)(realtimeTurn.takeScoped(Math.min(budget, Math.max(1, size)))), job))

    const run = (record: JobRecord, input: JobInput) =>
      Effect.gen(function*() {
        const settings = yield* readPartnerSettings(partner)
        // read again for each batch of the job; a failed read keeps the list it started with
        const context = yield* Effect.context<Effect.Services<ReturnType<typeof readPartnerSettings>>>()
        const allowedSegmentsNow = readPartnerSettings(partner).pipe(
          Effect.map((now) => now.exists ? now.allowedSegments : settings.allowedSegments),
          Effect.catch((error) => Effect.as(Effect.logWarning("ingest: the partner's allowedSegments could not be read again; the job keeps those it read", { error }), settings.allowedSegments)),
          Effect.provideContext(context)
        )
        const job = runJob(record, input, settings, options.translate, { ...options, realtimeSettled, allowedSegmentsNow })
        yield* (input._tag === "Body" ? realtimeRun(input.body.length, job) : job)
      }).pipe(
        Effect.tapCause((cause) =>
          Cause.hasDies(cause)
            ? Effect.sync(() => void crashes.set(record.job.id, (crashes.get(record.job.id) ?? 0) + 1))
            : Effect.void),
        Effect.annotateLogs({ partner, job: record.job.id })
      )

    const runFileJobs = Effect.gen(function*() {
      for (;;) {
        const next = (yield* jobs.unfinished(partner)).find((record) => record.job.source !== "realtime")
        if (next === undefined) return yield* settleEnded
        const id = next.job.id
        const crashed = crashes.get(id) ?? 0
        if (crashed >= maxCrashes) yield* failCrashed(next, `${crashed} runs ended in a defect`)
        else yield* run(next, { _tag: "Upload" })
        yield* settleHeld(id)
      }
    })

    const files = yield* Actor.make<Scan, unknown, RunServices>({
      kind: "translator:files",
      id: partner,
      // One Scan waiting is enough: it finds every job recorded before it runs.
      mailboxCapacity: 1,
      supervision: options.supervision,
      onEscalate: escalate,
      behavior: ({ self }) =>
        Effect.gen(function*() {
          yield* self.offer({ _tag: "Scan" }).pipe(Effect.ignore)
          return () => Effect.asVoid(untilStopping(runFileJobs))
        })
    })

    const runRealtime = ({ delivery, message }: Realtime) =>
      Effect.gen(function*() {
        yield* jobs.create(realtimeJob(message, realtimeDigest(message)))
        const record = yield* jobs.get(message.jobId)
        if (Option.isNone(record) || ended(record.value.job.state)) return yield* delivery.ack
        if (delivery.deliveries > maxCrashes) {
          yield* failCrashed(record.value, `delivered ${delivery.deliveries} times without finishing`)
          return yield* delivery.ack
        }
        yield* run(record.value, { _tag: "Body", body: message.body, receivedAt: message.receivedAt })
        yield* delivery.ack
      })

    const realtimeActors = yield* Effect.forEach(Array.from({ length: lanes }, (_, i) => i), (i) =>
      Actor.make<Realtime, unknown, RunServices>({
        kind: "translator:realtime",
        id: lanes === 1 ? partner : `${partner}#${i}`,
        mailboxCapacity: Math.max(1, Math.ceil((options.realtimeMailbox ?? 64) / lanes)),
        supervision: options.supervision,
        onEscalate: escalate,
        // Its run failed or it could not run: delivered again (counted), so a poison message ends failed.
        undelivered: ({ delivery }) => delivery.retryLater("1 second"),
        behavior: () => Effect.succeed((msg: Realtime) => Effect.asVoid(untilStopping(runRealtime(msg))))
      }))
    /** The realtime actor with the fewest messages, waiting or being handled (the first of them on a tie). */
    const leastBusy = Effect.map(
      Effect.forEach(realtimeActors, (actor) => Effect.zipWith(actor.mailboxSize, actor.idle, (waiting, idle) => waiting + (idle ? 0 : 1))),
      (loads) => realtimeActors[loads.indexOf(Math.min(...loads))]!
    )

    // Runs before the actors drain (finalizers run in reverse): their running job and waiting messages stop at once.
    yield* Effect.addFinalizer(() => Deferred.succeed(stopping, undefined))

    const dispatch = (delivery: IngestDelivery): Effect.Effect<void, unknown, IngestJobs> => {
      const message = delivery.message
      if (message._tag === "RealtimeRecords") return Effect.flatMap(leastBusy, (actor) => actor.tell({ _tag: "Realtime", delivery, message }))
      return Effect.gen(function*() {
        const record = yield* jobs.get(message.jobId)
        if (Option.isNone(record)) {
          yield* Effect.logWarning("an ingest message names no job in the ledger; dropped", { partner, job: message.jobId })
          return yield* delivery.ack
        }
        if (ended(record.value.job.state)) return yield* delivery.ack
        held.set(message.jobId, delivery)
        yield* files.offer({ _tag: "Scan" }).pipe(Effect.ignore)
      })
    }

    const deliveries = yield* queue.take(partner)
    const consume = deliveries.pipe(
      Stream.runForEach(dispatch),
      Effect.andThen(Effect.fail(new TranslatorStopped({ partner, cause: "INGEST messages ended" })))
    )
    return yield* Effect.raceFirst(consume, failed)
  }).pipe(Effect.scoped)

