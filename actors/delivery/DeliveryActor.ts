/**
 * The DeliveryActor of one destination lane (issue 9 items 3–5): it takes the lane's chunks from
 * DELIVER in order and sends their records to the partner, as fast as the lane's share of the limit
 * allows and never faster (RateGovernor: sliding one-second window, AIMD on 429), with at most
 * `maxInFlight` requests awaiting an answer, retries with backoff (RetryPolicy), and a circuit that
 * opens after repeated failures (Circuit). Its own queue (the chunks it holds), in-flight limit,
 * HTTP pool and supervisor (runDeliveries restarts it alone): a slow or failing partner costs the
 * other destinations nothing but its own share.
 *
 * Order: a request waits until no request naming one of its users is in flight (answered), and
 * requests start in the chunks' order (RequestDispatcher), so a remove never overtakes the add it
 * follows. Senders are fibers spawned on demand up to the in-flight limit, each sending request after
 * request in plain code while any is ready, not a fiber per request; an idle lane holds none. Every
 * request on the wire holds one of the process's sockets (SocketBudget). Nothing lost: a chunk is acked
 * only once every request of it has a receipt (after its 2xx) or a dead letter (refused, or every
 * attempt failed), both stored on JetStream first. Nothing repeated beyond what was in flight: a chunk
 * handed out again (a takeover) first reads its receipts back and skips the records they name; the
 * others go with the same `Idempotency-Key` as before (while format and batch size stay); a package
 * chunk published again after it was delivered (the package outbox, past JetStream's duplicate window)
 * is skipped by the lane's watermark. While the circuit is open, requests wait (probing now and
 * then) and no chunk is pulled beyond the few held: the backlog stays on DELIVER. The same while DLQ
 * refuses the lane's dead letters (the destination's at their bound, or DLQ full): the sender holding
 * one tries again every `deadLettersFullRetry`, and once every sender holds one the lane sends nothing
 * more. A chunk packaged for a deleted predecessor of the destination (another incarnation of its id)
 * is never sent.
 */
import { Clock, Deferred, Effect, FiberSet, Metric, Option, Schedule, Stream } from "effect"
import type { Duration } from "effect"
import { chunkId } from "../../domain/delivery/Chunk.ts"
import * as ArrivalBound from "../../domain/delivery/ArrivalBound.ts"
import * as Circuit from "../../domain/delivery/Circuit.ts"
import { type Attempt, attemptsKept, type DeadLetter, maxAnswerBody } from "../../domain/delivery/DeadLetter.ts"
import { redactor } from "../../domain/delivery/redactSecrets.ts"
import { bodyOf, type BodyFormat, type DeliveryRequest, headersFor, requestsOf } from "../../domain/delivery/DeliveryRequests.ts"
import { DeliveryLedger, type DeliveryLedgerError } from "../../domain/delivery/DeliveryLedger.ts"
import { type ChunkDelivery, DeliveryQueue } from "../../domain/delivery/DeliveryQueue.ts"
import { compareIncarnation } from "../../domain/delivery/Incarnation.ts"
import { type PartnerAnswer, PartnerHttp, type PartnerRequest } from "../../domain/delivery/PartnerHttp.ts"
import * as RateGovernor from "../../domain/delivery/RateGovernor.ts"
import * as RetryPolicy from "../../domain/delivery/RetryPolicy.ts"
import { Cluster } from "../../domain/Cluster.ts"
import { makeAdmissions } from "./Admissions.ts"
import { makeLaneStats } from "./DeliveryStats.ts"
import { makeLaneWatermark } from "./laneWatermark.ts"
import { makeRequestDispatcher } from "./RequestDispatcher.ts"
import { DeliverySockets, laneFloor } from "./SocketBudget.ts"

/** What a lane delivers with: the destination's config with this lane's shares, and every header (secret ones included). */
export interface LaneSettings {
  readonly destination: string
  readonly lane: number
  /** the destination's incarnation (domain/delivery/Incarnation.ts): a chunk of an older one is dropped, of a newer one ends the lane */
  readonly incarnation?: number
  readonly url: string
  readonly method: "POST" | "PUT"
  /** plain and secret headers: sent, never logged */
  readonly headers: Readonly<Record<string, string>>
  /** the secret headers' values: cut out of the partner's answers a dead letter keeps (a partner may echo the request) */
  readonly secrets?: ReadonlyArray<string>
  readonly format: BodyFormat
  readonly batchSize: number
  /** this lane's share of the destination's limit */
  readonly ratePerSecond: number
  /** this lane's share of the destination's in-flight limit */
  readonly maxInFlight: number
  readonly timeoutMs: number
  readonly maxAttempts: number
}

export interface DeliveryActorOptions {
  /** chunks held unacknowledged at once (pulled ahead of sending); default 4 */
  readonly maxHeldChunks?: number
  /** how often the status is written; default 1 second */
  readonly statusEvery?: Duration.Input
  readonly backoff?: { readonly baseDelayMs: number; readonly maxDelayMs: number }
  readonly circuit?: Partial<Circuit.CircuitOptions>
  /** the partner's window, ms (a millisecond over its second absorbs our clock's rounding); default 1001 */
  readonly windowMs?: number
  /** attempts kept in a dead letter (the first and the latest); default 20 */
  readonly maxAttemptsKept?: number
  /**
   * how far ahead of an even pace over the window a request may start (RateGovernor pacing); default
   * none (bursts allowed): with pacing at 25 ms the demo's two destinations stalled (a 429-answering one
   * at ~5 requests/s against 50, a recovered one with its backlog left), not yet understood
   */
  readonly paceAheadMs?: number
  /** how often a dead letter DLQ refused for its bounds is offered again; default 5 seconds */
  readonly deadLettersFullRetry?: Duration.Input
}

/** A chunk taken from DELIVER, acked once none of its requests is left unsettled. */
interface HeldChunk {
  readonly delivery: ChunkDelivery
  /** moves the lane's watermark past it */
  readonly passed: Effect.Effect<void, DeliveryLedgerError>
  unsettled: number
}

/** A request as the dispatcher hands it to a sender. */
interface Job {
  readonly request: DeliveryRequest
  readonly users: ReadonlyArray<string>
  readonly chunk: HeldChunk
}

/** How a sender's plain-code run hands control back to its fiber. */
type SenderStep =
  /** no request ready: the sender ends (the dispatcher counted it out) */
  | { readonly _tag: "Idle" }
  /** the last request of a chunk has its receipt: settle the chunk, then take the next request */
  | { readonly _tag: "Settle"; readonly chunk: HeldChunk }
  /** store the dead letter, settle its chunk if it was the last, then take the next request */
  | { readonly _tag: "DeadLetter"; readonly deadLetter: DeadLetter; readonly job: Job; readonly now: number }

/** A sender's plain-code run: ends by calling `step` or `fail` once, unless no longer `live` (interrupted). */
interface SenderControl {
  readonly live: () => boolean
  /** runs `f` (a callback's body): what it throws fails the sender as a defect, as it would in an Effect, and its lane restarts */
  readonly guard: (f: () => void) => void
  /** goes on with `then` after `ms` (a timer, cleared if the sender is interrupted meanwhile) */
  readonly wait: (ms: number, then: Run) => void
  readonly step: (step: SenderStep) => void
  readonly fail: (error: DeliveryLedgerError) => void
}
type Run = (control: SenderControl) => void

let isoMs = Number.NaN
let iso = ""
/** `ms` as RFC 3339 (the last one kept: a fast destination's answers come many to a millisecond) */
const isoAt = (ms: number) => {
  if (ms !== isoMs) {
    isoMs = ms
    iso = new Date(ms).toISOString()
  }
  return iso
}

const chunksSkipped = Metric.counter("tributary_delivery_chunks_skipped_total", {
  description: "Chunks taken off DELIVER without sending: of a deleted predecessor of the destination (reason incarnation), or a continuous chunk published again after it was delivered (reason delivered)",
  incremental: true
})

/** A lane refused a socket asks again this much later (the process's sockets are all taken). */
const socketWaitMs = 10

/** Dead letters are logged as a count at most this often per lane. */
const deadLetterLogEveryMs = 10_000

/** The attempt as a dead letter lists it. */
const attemptOf = (at: number, answer: PartnerAnswer, redact: (text: string) => string): Attempt => {
  switch (answer._tag) {
    case "Answered":
      return { at: isoAt(at), status: answer.status, ...(answer.body === undefined ? {} : { body: redact(answer.body).slice(0, maxAnswerBody) }) }
    case "TimedOut":
      return { at: isoAt(at), error: "timed out" }
    case "ConnectionFailed":
      return { at: isoAt(at), error: redact(answer.message) }
  }
}

/**
 * Runs the lane until interrupted (its lease lost or handed back), until the bus fails it, or until a
 * chunk shows the destination was created again (it then returns: load it again and start over).
 */
export const deliverLane = (settings: LaneSettings, options: DeliveryActorOptions = {}) =>
  Effect.gen(function*() {
    const queue = yield* DeliveryQueue
    const ledger = yield* DeliveryLedger
    const http = yield* PartnerHttp
    const { self } = yield* Cluster
    const { destination, lane } = settings
    const maxInFlight = Math.max(1, settings.maxInFlight)
    const client = yield* http.client(settings.url, { connections: maxInFlight })
    const windowMs = options.windowMs ?? 1_001
    const governor = RateGovernor.make(settings.ratePerSecond, { windowMs, paceAheadMs: options.paceAheadMs })
    const arrivals = ArrivalBound.make(windowMs)
    const circuit = Circuit.make(options.circuit)
    const policy: RetryPolicy.RetryPolicy = { ...RetryPolicy.defaultRetryPolicy, ...options.backoff, maxAttempts: settings.maxAttempts }
    const maxAttemptsKept = options.maxAttemptsKept ?? attemptsKept
    const clock = yield* Clock.Clock
    const sockets = (yield* DeliverySockets).join(Math.min(laneFloor, maxInFlight))
    /**
     * A request may start once the arrival bound, the process's sockets and the governor all let it;
     * counted as started by each at once. It gives its socket back with its answer.
     */
    const admissions = makeAdmissions((at) => {
      const room = ArrivalBound.room(arrivals, RateGovernor.allowed(governor), at)
      if (!room.ok) return room.waitMs
      if (!sockets.take()) return socketWaitMs
      const slot = RateGovernor.acquire(governor, at)
      if (!slot.ok) {
        sockets.give()
        return slot.waitMs
      }
      ArrivalBound.started(arrivals)
      return 0
    }, () => clock.currentTimeMillisUnsafe())
    yield* Effect.addFinalizer(() => Effect.sync(() => {
      admissions.close()
      sockets.leave()
    }))
    const stats = makeLaneStats(destination, lane, yield* Effect.context<never>())
    const senders = yield* FiberSet.make<void, unknown>()
    const runSender = yield* FiberSet.runtime(senders)<never>()
    const fixedHeaders = headersFor(settings.headers, settings.format)
    const redact = redactor(settings.secrets ?? [])
    const incarnationStamp = settings.incarnation === undefined ? {} : { incarnation: settings.incarnation }
    /** completed when a chunk shows the destination was created again since the lane loaded it */
    const recreated = Deferred.makeUnsafe<void>()
    const skippedLogged = new Set<string>()
    /** Takes a chunk off DELIVER without sending it: counted, logged once per lane and reason. */
    const skip = (delivery: ChunkDelivery, reason: "incarnation" | "delivered") =>
      Effect.gen(function*() {
        yield* delivery.ack
        yield* Metric.update(chunksSkipped.pipe(Metric.withAttributes({ destination, reason })), 1)
        if (skippedLogged.has(reason)) return
        skippedLogged.add(reason)
        yield* Effect.logInfo("delivery: chunks skipped", { destination, lane, reason, chunk: chunkId(delivery.chunk), incarnation: delivery.chunk.incarnation })
      })

    // Dead letters are logged at once, then at most every 10 s as a count (and by the status writer):
    // a destination refusing everything at its rate would otherwise write a log line per request.
    let deadLettersLogged = 0
    let deadLettersLoggedAt = Number.NEGATIVE_INFINITY
    let lastDeadLetter: { readonly request: string; readonly reason: string; readonly attempts: number } | undefined
    const logDeadLetters = (now: number) => {
      const count = stats.counters.failed - deadLettersLogged
      if (count === 0 || now - deadLettersLoggedAt < deadLetterLogEveryMs) return Effect.void
      deadLettersLogged = stats.counters.failed
      deadLettersLoggedAt = now
      return Effect.logWarning("delivery: dead letters", { destination, lane, count, last: lastDeadLetter })
    }

    /**
     * Sends a job's request until it is delivered or dead-lettered, then (after its receipt is stored)
     * the next ready job, and so on, in plain code: the hot path of a fast destination, where an Effect
     * step per request cost more than the HTTP exchange. It hands control back to the sender's fiber
     * (`step`) only for what takes an Effect: a dead letter, a chunk to settle, or no job ready
     * (the sender ends). `dispatcher.answered` frees a request's users as soon as the partner's answer
     * settles it; its in-flight slot stays taken until its receipt or dead letter is stored.
     */
    const sendJob = (job: Job): Run => (control) => {
      const { request } = job
      const outgoing: PartnerRequest = {
        method: settings.method,
        headers: { ...fixedHeaders, "idempotency-key": request.id },
        body: bodyOf(settings.format, request.records),
        timeoutMs: settings.timeoutMs
      }
      const attempts: Array<Attempt> = []
      let failures = 0
      /** the circuit let this attempt through (once: a half-open circuit's probe is this attempt) */
      let passed = false
      /** Admission: the circuit, then the lane's admissions (the arrival bound, a socket and the governor, in turn). */
      const attempt = (control: SenderControl): void => {
        if (!passed) {
          const admitted = Circuit.admit(circuit, clock.currentTimeMillisUnsafe())
          if (!admitted.ok) return control.wait(admitted.waitMs, attempt)
          passed = true
        }
        admissions.enter(() => control.guard(() => start(control)), control.live)
      }
      const start = (control: SenderControl): void => {
        const at = clock.currentTimeMillisUnsafe()
        passed = false
        stats.counters.sent++
        client.dispatch(outgoing, (answer) => {
          sockets.give()
          if (control.live()) control.guard(() => answered(control, at, answer))
        })
      }
      const answered = (control: SenderControl, startedAt: number, answer: PartnerAnswer): void => {
        const now = clock.currentTimeMillisUnsafe()
        ArrivalBound.answered(arrivals, now)
        stats.latency(now - startedAt)
        const outcome = RetryPolicy.classify(answer)
        Circuit.record(circuit, outcome, now)
        if (outcome === "throttled") {
          RateGovernor.onThrottled(governor, now, RetryPolicy.retryAfterMs(answer._tag === "Answered" ? answer.retryAfter : undefined, now))
        } else {
          RateGovernor.onAccepted(governor, now)
        }
        if (outcome === "delivered") {
          stats.counters.succeeded++
          dispatcher.answered(job)
          const first = request.records[0]
          if (first !== undefined) stats.freshness(now - Date.parse(first.time))
          const status = answer._tag === "Answered" ? answer.status : 200
          return ledger.storeReceipt({ destination, requestId: request.id, status, at: isoAt(now), records: request.records }, (error) =>
            control.guard(() => {
              if (!control.live()) return
              if (error !== undefined) return control.fail(error)
              if (--job.chunk.unsettled === 0) return control.step({ _tag: "Settle", chunk: job.chunk })
              const next = dispatcher.take()
              if (next === undefined) return control.step({ _tag: "Idle" })
              sendJob(next)(control)
            }))
        }
        attempts.push(attemptOf(startedAt, answer, redact))
        if (attempts.length > maxAttemptsKept) attempts.splice(1, 1)
        if (outcome === "retryable") failures++
        const verdict = RetryPolicy.decide(policy, answer, Math.max(1, failures), now, Math.random)
        switch (verdict._tag) {
          case "Delivered":
          case "Throttled":
            stats.counters.retried++
            return attempt(control)
          case "Retry":
            stats.counters.retried++
            return control.wait(verdict.delayMs, attempt)
          case "DeadLetter":
            stats.counters.failed++
            dispatcher.answered(job)
            lastDeadLetter = { request: request.id, reason: verdict.reason, attempts: attempts.length }
            return control.step({
              _tag: "DeadLetter",
              job,
              now,
              deadLetter: { id: request.id, destination, ...incarnationStamp, records: request.records, attempts }
            })
        }
      }
      attempt(control)
    }

    /** Runs `run` until it hands back a step; interrupted, its timer is cleared and what it started later is ignored. */
    const runPlain = (run: Run) =>
      Effect.callback<SenderStep, DeliveryLedgerError>((resume) => {
        let live = true
        let timer: ReturnType<typeof setTimeout> | undefined
        const end = (effect: Effect.Effect<SenderStep, DeliveryLedgerError>) => {
          if (!live) return
          live = false
          resume(effect)
        }
        const control: SenderControl = {
          live: () => live,
          guard: (f) => {
            try {
              f()
            } catch (defect) {
              end(Effect.die(defect))
            }
          },
          wait: (ms, then) => {
            timer = setTimeout(() => {
              timer = undefined
              if (live) control.guard(() => then(control))
            }, ms)
          },
          step: (step) => end(Effect.succeed(step)),
          fail: (error) => end(Effect.fail(error))
        }
        control.guard(() => run(control))
        return Effect.sync(() => {
          live = false
          clearTimeout(timer)
        })
      })

    /**
     * Stores a dead letter; while DLQ refuses it for its bounds, offers it again every
     * `deadLettersFullRetry`, this sender waiting meanwhile. Logged when it starts and when it ends.
     */
    let deadLettersRefused = false
    const storeDeadLetter = (deadLetter: DeadLetter) =>
      ledger.deadLetter(deadLetter).pipe(
        Effect.tapError((error) => {
          if (error._tag !== "DeadLettersFull" || deadLettersRefused) return Effect.void
          deadLettersRefused = true
          return Effect.logWarning("delivery: DLQ refuses this destination's dead letters; the lane waits until some are replayed or discarded", { destination, lane, reason: error.reason })
        }),
        Effect.retry({ while: (error) => error._tag === "DeadLettersFull", schedule: Schedule.spaced(options.deadLettersFullRetry ?? "5 seconds") }),
        Effect.andThen(() => {
          if (!deadLettersRefused) return Effect.void
          deadLettersRefused = false
          return Effect.logInfo("delivery: DLQ takes this destination's dead letters again", { destination, lane })
        })
      )

    // continuous and refresh chunks delivered before are skipped
    const watermark = yield* makeLaneWatermark(`${destination}.${lane}`, settings.incarnation)

    /** Every request of it has a receipt or a dead letter: the watermark moved past it, then off DELIVER. */
    const settle = (held: HeldChunk) =>
      held.passed.pipe(
        Effect.andThen(held.delivery.ack),
        Effect.andThen(Clock.currentTimeMillis),
        Effect.map((now) => stats.settled(now, held.delivery.chunk.records.length))
      )

    /**
     * A sender, spawned for a ready request when fewer than the in-flight limit run: it sends it, and
     * is free again only once its receipt or dead letter is stored, then takes the next ready request
     * or ends. Requests not written down are what a takeover repeats, and so they never number more
     * than the in-flight limit.
     */
    const sender = (first: Job) =>
      Effect.gen(function*() {
        const next = () => {
          const job = dispatcher.take()
          return job === undefined ? undefined : sendJob(job)
        }
        for (let run: Run | undefined = sendJob(first); run !== undefined;) {
          const step: SenderStep = yield* runPlain(run)
          switch (step._tag) {
            case "Idle":
              return
            case "Settle":
              yield* settle(step.chunk)
              run = next()
              break
            case "DeadLetter":
              yield* logDeadLetters(step.now)
              yield* storeDeadLetter(step.deadLetter)
              if (--step.job.chunk.unsettled === 0) yield* settle(step.job.chunk)
              run = next()
              break
          }
        }
      })
    const dispatcher = makeRequestDispatcher<Job>(maxInFlight, (first) => void runSender(sender(first)))

    /**
     * Queues a chunk's requests, but those a previous holder already delivered. A chunk of a deleted
     * predecessor of the destination is dropped, as is one the watermark covers; one of a newer
     * incarnation ends the lane (held, not acked), to start again with the destination as it is now.
     */
    const intake = (delivery: ChunkDelivery) =>
      Effect.gen(function*() {
        const { chunk } = delivery
        switch (compareIncarnation(chunk.incarnation, settings.incarnation)) {
          case "older":
            return yield* skip(delivery, "incarnation")
          case "newer":
            Deferred.doneUnsafe(recreated, Effect.void)
            return yield* Effect.never
        }
        const taken = watermark.take(chunk)
        if (Option.isNone(taken)) return yield* skip(delivery, "delivered")
        const done = delivery.handedOutBefore
          ? yield* ledger.receiptsOf(destination, `${chunkId(chunk)}.`, delivery.storedAtMs)
          : new Set<string>()
        if (done.size > 0) yield* Effect.logInfo("delivery: skipping requests already acknowledged or dead-lettered", { destination, chunk: chunkId(chunk), skipped: done.size })
        // the records the receipts name are skipped, the rest grouped anew: the batch size or format may have changed
        const requests = requestsOf(chunk, settings.format, settings.batchSize, done)
        const held: HeldChunk = { delivery, passed: taken.value, unsettled: 0 }
        const jobs = requests.map((request): Job => ({ request, users: request.users, chunk: held }))
        held.unsettled = jobs.length
        if (jobs.length === 0) return yield* settle(held)
        dispatcher.add(jobs)
      })

    const writeStatus = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      yield* logDeadLetters(now)
      const state = Circuit.stateAt(circuit, now)
      const currentRate = RateGovernor.currentRate(governor, now)
      const allowedRate = RateGovernor.allowed(governor)
      yield* stats.report({ currentRate, allowedRate, limit: settings.ratePerSecond, circuit: state })
      yield* ledger.status(`${destination}.${lane}`, {
        process: self,
        at: now,
        ratePerSecond: settings.ratePerSecond,
        allowedRate,
        currentRate,
        sent: stats.counters.sent,
        succeeded: stats.counters.succeeded,
        retried: stats.counters.retried,
        failed: stats.counters.failed,
        drainRate: stats.drainRate(now),
        ...stats.quantiles(),
        circuit: state,
        deadLettersRefused
      }).pipe(Effect.catch((error) => Effect.logWarning("delivery: cannot write the status", { destination, lane, error })))
    })
    yield* writeStatus.pipe(Effect.delay(options.statusEvery ?? "1 second"), Effect.forever, Effect.forkScoped)

    const maxHeld = options.maxHeldChunks ?? 4
    // A chunk of a newer incarnation ends the lane as soon as it arrives, not once the requests of the
    // chunks before it have started (they wait for slots): the buffer takes what is held at once.
    const chunks = (yield* queue.take(destination, lane, { maxHeld })).pipe(
      Stream.tap((delivery) => compareIncarnation(delivery.chunk.incarnation, settings.incarnation) === "newer" ? Deferred.succeed(recreated, undefined) : Effect.void),
      Stream.buffer({ capacity: maxHeld, strategy: "suspend" })
    )
    yield* Effect.logInfo("delivery: lane started", { destination, lane, ratePerSecond: settings.ratePerSecond, maxInFlight })
    // A request or an ack that fails (the bus away) fails the lane: its supervisor starts it again and
    // the chunks not acked come back, their receipts skipped. A newer incarnation ends it at once: its
    // requests in flight are interrupted, and the caller loads the destination again.
    return yield* Effect.raceFirst(
      Effect.raceFirst(
        Stream.runForEach(chunks, intake).pipe(Effect.andThen(Effect.never)),
        FiberSet.join(senders).pipe(Effect.andThen(Effect.never))
      ),
      Deferred.await(recreated).pipe(Effect.andThen(Effect.logInfo("delivery: the destination was created again; the lane starts again", { destination, lane })))
    )
  }).pipe(Effect.scoped, Effect.annotateLogs({ destination: settings.destination, lane: settings.lane }))
