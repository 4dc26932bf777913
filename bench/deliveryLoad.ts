/**
 * HTTP loops for the delivery benchmark (bench/delivery.ts), against the partner simulator:
 *
 * - `plainLoop`: the CEILING — a keep-alive undici pool with `inFlight` requests always out, no limit,
 *   nothing else: what this machine can send to the simulator.
 * - `governedLoop`: the same loop through the platform's pure delivery policies, one destination's
 *   worth: `RateGovernor` (sliding window + AIMD on 429), `RetryPolicy` and `Circuit`, with the
 *   destination's in-flight limit — the DeliveryActor's sending core without JetStream around it.
 *
 * Each request carries one loader record and an `Idempotency-Key`. `loopSender` is the benchmark's
 * `Sender` made of governed loops in this process; `deliveryPlatform.ts` has the platform's.
 */
import { Effect } from "effect"
import { Pool } from "undici"
import * as Circuit from "../domain/delivery/Circuit.ts"
import * as RateGovernor from "../domain/delivery/RateGovernor.ts"
import { classify, decide, defaultRetryPolicy, type Outcome } from "../domain/delivery/RetryPolicy.ts"

export interface LoopResult {
  readonly sent: number
  readonly succeeded: number
  readonly throttled: number
  readonly failed: number
  readonly seconds: number
}

const record = (i: number) =>
  JSON.stringify({ idKind: "cookie", userId: `u${i}`, segmentId: "1", op: "add", time: "2026-11-28T12:00:00.000Z" })

/** A keep-alive pool of `connections` to the simulator (pipelining off, as partners' APIs expect). */
export const pool = (url: string, connections: number) => new Pool(url, { connections, pipelining: 1, keepAliveTimeout: 60_000 })

const send = async (p: Pool, path: string, i: number, key: string): Promise<Outcome> => {
  try {
    const { statusCode, headers, body } = await p.request({
      path,
      method: "POST",
      headers: { "content-type": "application/json", "idempotency-key": key },
      body: record(i),
      headersTimeout: 30_000,
      bodyTimeout: 30_000
    })
    await body.dump()
    const retryAfter = headers["retry-after"]
    return { _tag: "Answered", status: statusCode, retryAfter: typeof retryAfter === "string" ? retryAfter : undefined }
  } catch (error) {
    return { _tag: "ConnectionFailed", message: String(error) }
  }
}

/** The ceiling: `inFlight` requests always out to `${url}${path}` for `durationMs`. */
export const plainLoop = async (url: string, path: string, inFlight: number, durationMs: number): Promise<LoopResult> => {
  const p = pool(url, inFlight)
  const started = performance.now()
  const counts = { sent: 0, succeeded: 0, throttled: 0, failed: 0 }
  const worker = async () => {
    while (performance.now() - started < durationMs) {
      const i = counts.sent++
      const outcome = await send(p, path, i, `ceiling-${i}`)
      if (outcome._tag === "Answered" && outcome.status < 300) counts.succeeded++
      else counts.failed++
    }
  }
  await Promise.all(Array.from({ length: inFlight }, worker))
  const seconds = (performance.now() - started) / 1000
  await p.close()
  return { ...counts, seconds }
}

export interface GovernedOptions {
  readonly url: string
  readonly path: string
  readonly ratePerSecond: number
  readonly inFlight: number
  readonly durationMs: number
  readonly governor?: Partial<RateGovernor.GovernorOptions>
}

/**
 * One destination sent as the DeliveryActor sends it, for `durationMs`: a request starts only when the
 * governor, the circuit and the in-flight limit all allow it; a throttled or failed request is sent
 * again (same key) when the policies say so.
 */
export const governedLoop = (options: GovernedOptions): Promise<LoopResult> =>
  new Promise((resolve) => {
    const p = pool(options.url, options.inFlight)
    const governor = RateGovernor.make(options.ratePerSecond, options.governor)
    const circuit = Circuit.make()
    const started = performance.now()
    const counts = { sent: 0, succeeded: 0, throttled: 0, failed: 0 }
    /** requests to send again (index, attempt), before new ones */
    const again: Array<{ readonly i: number; readonly attempt: number }> = []
    let next = 0
    let inFlight = 0
    let timer: ReturnType<typeof setTimeout> | undefined
    let done = false

    const finish = () => {
      if (done || inFlight > 0) return
      done = true
      void p.close().then(() => resolve({ ...counts, seconds: (performance.now() - started) / 1000 }))
    }
    const wake = (ms: number) => {
      if (timer === undefined) timer = setTimeout(() => (timer = undefined, pump()), Math.max(1, Math.ceil(ms)))
    }
    const pump = () => {
      if (performance.now() - started >= options.durationMs) return finish()
      while (inFlight < options.inFlight) {
        const now = performance.now()
        const open = Circuit.admit(circuit, now)
        if (!open.ok) return wake(open.waitMs)
        const slot = RateGovernor.acquire(governor, now)
        if (!slot.ok) return wake(slot.waitMs)
        const request = again.shift() ?? { i: next++, attempt: 1 }
        inFlight++
        counts.sent++
        void send(p, options.path, request.i, `bench-${request.i}`).then((outcome) => {
          inFlight--
          const at = performance.now()
          const verdict = decide(defaultRetryPolicy, outcome, request.attempt, Date.now(), Math.random)
          Circuit.record(circuit, classify(outcome), at)
          switch (verdict._tag) {
            case "Delivered":
              counts.succeeded++
              RateGovernor.onAccepted(governor, at)
              break
            case "Throttled":
              counts.throttled++
              RateGovernor.onThrottled(governor, at, verdict.retryAfterMs)
              again.push(request)
              break
            case "Retry":
              counts.failed++
              setTimeout(() => (again.push({ i: request.i, attempt: request.attempt + 1 }), pump()), verdict.delayMs)
              break
            case "DeadLetter":
              counts.failed++
          }
          pump()
        })
      }
    }
    pump()
  })

/** A destination as the benchmark sets it up. */
export interface BenchDestination {
  readonly id: string
  readonly ratePerSecond: number
  readonly maxInFlight: number
}

/** What sends the benchmark's requests to the simulator. */
export interface Sender {
  readonly kind: string
  /** the process that sends, for its CPU time */
  readonly pid: number
  /** sends to every destination (`${simulator}/d/<id>`) for `durationMs` of delivery each, then stops */
  readonly send: (destinations: ReadonlyArray<BenchDestination>, durationMs: number) => Effect.Effect<void>
}

/** Governed loops in this process, one per destination. */
export const loopSender = (simulator: string, governor: Partial<RateGovernor.GovernorOptions>): Sender => ({
  kind: "governed loops in the bench process (RateGovernor + RetryPolicy + Circuit over undici)",
  pid: process.pid,
  send: (destinations, durationMs) =>
    Effect.forEach(destinations, (d) =>
      Effect.promise(() =>
        governedLoop({ url: simulator, path: `/d/${d.id}`, ratePerSecond: d.ratePerSecond, inFlight: d.maxInFlight, durationMs, governor })
      ), { concurrency: "unbounded", discard: true })
})
