/**
 * Delivery to partners (issue 9, item 8), parts (a) and (b), against the partner simulator in its own
 * process (test/fixtures/partnerSimulator.ts), which enforces each destination's limit over sliding
 * one-second windows and counts the most requests it saw in any such window.
 *
 * - (a) ISOLATION AND ACCURACY: 20 destinations at 200 requests/s each (4,000/s in all), sent as the
 *   deliverer sends (bench/deliveryLoad.ts `governedLoop`: rate governor, retry policy, circuit,
 *   in-flight limit), first alone, then beside a 21st destination answering in 2 s and a 22nd answering
 *   429 to 30% of requests. Per destination: the achieved rate over the steady seconds (the simulator's
 *   per-second counts, the first 2 s and the last one left out) against the limit, and the most
 *   requests in any one-second window. The cost of the bad two: 1 − (with them ÷ alone).
 * - (b) ONE FAST DESTINATION: limit 15,000 requests/s, beside the CEILING measured in the same run: a
 *   plain keep-alive undici loop against the same simulator with no limit (64 in flight).
 *
 * BENCH_DELIVERY_SECONDS (default 12) is each phase's length. `node bench/delivery.ts` alone, or
 * `npm run bench -- delivery`.
 */
import { readFileSync } from "node:fs"
import { Effect } from "effect"
import { destinationStats, spawnPartnerSimulator, type SimulatorStats } from "../test/fixtures/partnerSimulator.ts"
import { governedLoop, plainLoop, type LoopResult } from "./deliveryLoad.ts"
import { round2 } from "./stats.ts"
import type { SummaryRow } from "./summary.ts"

const seconds = Number(process.env.BENCH_DELIVERY_SECONDS ?? 12)
const healthy = 20
const healthyLimit = 200
const fastLimit = 15_000
const ceilingInFlight = 64
/** a destination's in-flight limit in (a): 200/s at up to 80 ms an answer */
const inFlight = 16
/**
 * The governor's window for the bench: the partner stamps arrivals, not sends; a few ms more than its
 * second absorbs the jitter between the two clocks (loopback and two busy event loops).
 */
const windowMs = Number(process.env.BENCH_DELIVERY_WINDOW_MS ?? 1010)

/** CPU time of process `pid` so far, in µs (utime + stime of /proc/<pid>/stat, 100 ticks a second). */
const cpuMicros = (pid: number): number => {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /, "").split(" ")
  return (Number(fields[11]) + Number(fields[12])) * 10_000
}

/** CPU µs per request of the simulator and of this (sending) process while `effect` sends `requests()`. */
const cpuPerRequest = <A>(pid: number, effect: Effect.Effect<A>, requests: (a: A) => number) =>
  Effect.gen(function*() {
    const simulator0 = cpuMicros(pid)
    const sender0 = process.cpuUsage()
    const a = yield* effect
    const sender = process.cpuUsage(sender0)
    const n = Math.max(1, requests(a))
    return {
      result: a,
      cpuMicrosPerRequest: { sender: round2((sender.user + sender.system) / n), simulator: round2((cpuMicros(pid) - simulator0) / n) }
    }
  })

const names = (phase: string) => Array.from({ length: healthy }, (_, i) => `${phase}-h${String(i + 1).padStart(2, "0")}`)

/** Accepted requests per second over the steady seconds: the first 2 and the last one left out. */
const steadyRate = (stats: SimulatorStats): number => {
  const perSecond = stats.acceptedPerSecond.slice(2, -1)
  return perSecond.length === 0 ? 0 : round2(perSecond.reduce((sum, [, n]) => sum + n, 0) / perSecond.length)
}

interface DestinationFigure {
  readonly name: string
  readonly limit: number
  readonly achieved: number
  readonly ratio: number
  readonly maxInAnyWindow: number
  readonly throttled: number
  readonly sender: LoopResult
}

const figure = (url: string, name: string, limit: number, sender: LoopResult) =>
  Effect.map(destinationStats(url, name), (stats): DestinationFigure => ({
    name,
    limit,
    achieved: steadyRate(stats),
    ratio: round2(steadyRate(stats) / limit),
    maxInAnyWindow: stats.maxInAnyWindow,
    throttled: stats.throttled,
    sender
  }))

const run = Effect.gen(function*() {
  const limited = (phase: string) => Object.fromEntries(names(phase).map((n) => [n, { limit: healthyLimit }]))
  const { url, pid } = yield* spawnPartnerSimulator({
    ...limited("alone"),
    ...limited("beside"),
    slow: { limit: healthyLimit, slowMs: 2000 },
    flaky: { limit: healthyLimit, fail429Ratio: 0.3 },
    fast: { limit: fastLimit },
    ceiling: {}
  })
  const durationMs = seconds * 1000
  const governed = (name: string, ratePerSecond: number, inFlight: number) =>
    Effect.promise(() => governedLoop({ url, path: `/d/${name}`, ratePerSecond, inFlight, durationMs, governor: { windowMs } }))

  // (a) the 20 alone, then beside the slow and the flaky one
  const alone = yield* Effect.forEach(names("alone"), (n) => governed(n, healthyLimit, inFlight), { concurrency: "unbounded" })
  const aloneFigures = yield* Effect.forEach(names("alone"), (n, i) => figure(url, n, healthyLimit, alone[i]!))
  const beside = yield* Effect.forEach([...names("beside"), "slow", "flaky"], (n) => governed(n, healthyLimit, inFlight), { concurrency: "unbounded" })
  const besideFigures = yield* Effect.forEach([...names("beside"), "slow", "flaky"], (n, i) => figure(url, n, healthyLimit, beside[i]!))

  // (b) the ceiling, then one destination at 15,000/s
  const ceilingRun = yield* cpuPerRequest(pid, Effect.promise(() => plainLoop(url, "/d/ceiling", ceilingInFlight, durationMs)), (r) => r.sent)
  const ceiling = steadyRate(yield* destinationStats(url, "ceiling"))
  const fastRun = yield* cpuPerRequest(pid, governed("fast", fastLimit, ceilingInFlight), (r) => r.sent)
  const fast = yield* figure(url, "fast", fastLimit, fastRun.result)
  return { aloneFigures, besideFigures, ceilingRun, ceiling, fast, fastCpu: fastRun.cpuMicrosPerRequest }
}).pipe(Effect.scoped)

const mean = (values: ReadonlyArray<number>) => round2(values.reduce((a, b) => a + b, 0) / Math.max(1, values.length))

export const benchDelivery = async () => {
  const { aloneFigures, besideFigures, ceilingRun, ceiling, fast, fastCpu } = await Effect.runPromise(run)
  const besideHealthy = besideFigures.slice(0, healthy)
  const worst = (figures: ReadonlyArray<DestinationFigure>) => Math.min(...figures.map((f) => f.ratio))
  const maxWindow = (figures: ReadonlyArray<DestinationFigure>) => Math.max(...figures.map((f) => f.maxInAnyWindow))
  const cost = round2(1 - mean(besideHealthy.map((f) => f.achieved)) / mean(aloneFigures.map((f) => f.achieved)))
  const bound = Math.min(fastLimit, ceiling)
  const result = {
    name: "delivery",
    sender: "governedLoop (RateGovernor + RetryPolicy + Circuit over undici), not yet the platform's DeliveryActor",
    seconds,
    governorWindowMs: windowMs,
    a: {
      limit: healthyLimit,
      alone: { worstRatio: worst(aloneFigures), meanRate: mean(aloneFigures.map((f) => f.achieved)), maxInAnyWindow: maxWindow(aloneFigures) },
      beside: { worstRatio: worst(besideHealthy), meanRate: mean(besideHealthy.map((f) => f.achieved)), maxInAnyWindow: maxWindow(besideHealthy) },
      costOfSlowAndFlaky: cost,
      slow: besideFigures[healthy],
      flaky: besideFigures[healthy + 1],
      destinations: { alone: aloneFigures, beside: besideHealthy }
    },
    b: {
      limit: fastLimit,
      achieved: fast.achieved,
      maxInAnyWindow: fast.maxInAnyWindow,
      ceiling,
      ratio: round2(fast.achieved / bound),
      /** what one request costs each side: on a loaded machine, the figure that does not depend on the load */
      cpuMicrosPerRequest: { ceiling: ceilingRun.cpuMicrosPerRequest, governed: fastCpu },
      ceilingRun: ceilingRun.result,
      fast
    }
  }
  const rows: Array<SummaryRow> = [
    {
      benchmark: "delivery (a) 20 destinations × 200/s beside a slow and a 30%-429 one: worst achieved ÷ limit",
      figure: `worst ${worst(besideHealthy)}, max in any 1 s window ${maxWindow(besideHealthy)}`,
      ceiling: `limit ${healthyLimit}/s`,
      ratio: worst(besideHealthy),
      target: ">= 0.95, never above",
      pass: worst(besideHealthy) >= 0.95 && maxWindow(besideHealthy) <= healthyLimit
    },
    {
      benchmark: "delivery (a) cost of the slow and the failing destination to the 20 others",
      figure: `${round2(cost * 100)}%`,
      ceiling: `alone ${mean(aloneFigures.map((f) => f.achieved))}/s each`,
      ratio: round2(1 - cost),
      target: "< 5%",
      pass: cost < 0.05
    },
    {
      benchmark: "delivery (b) one destination limited to 15,000/s: achieved/s",
      figure: `${fast.achieved}/s, max in any 1 s window ${fast.maxInAnyWindow}`,
      ceiling: `plain undici loop ${ceiling}/s`,
      ratio: result.b.ratio,
      target: ">= 0.9 × min(limit, ceiling)",
      pass: result.b.ratio >= 0.9 && fast.maxInAnyWindow <= fastLimit
    }
  ]
  return { result, rows }
}

if (import.meta.main) {
  const { result, rows } = await benchDelivery()
  console.log(JSON.stringify({ ...result, a: { ...result.a, destinations: undefined } }, null, 2))
  console.log(rows)
  process.exit(0)
}
