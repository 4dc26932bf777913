/**
 * A lane's counters and recent samples, kept by its DeliveryActor: what it writes as its status every
 * second (domain/delivery/DestinationStatus.ts DelivererStatus) and adds to the Prometheus metrics per
 * destination. Latency is a request's time to its answer; freshness is the time from a record's
 * `time` (the commit of its membership change) to the partner's 2xx, taken on each request's first
 * record. Quantiles are over the last `samples` requests.
 */
import { Effect, Metric } from "effect"
import type { Context } from "effect"
import type { CircuitState } from "../../domain/delivery/DestinationStatus.ts"

const samples = 1_024

/** A ring of the most recent samples, for p50 / p99. */
class Recent {
  private readonly values = new Float64Array(samples)
  private count = 0
  private next = 0
  add(value: number) {
    this.values[this.next] = value
    this.next = (this.next + 1) % samples
    this.count = Math.min(samples, this.count + 1)
  }
  quantile(q: number): number | null {
    if (this.count === 0) return null
    const sorted = Array.from(this.values.subarray(0, this.count)).sort((a, b) => a - b)
    return sorted[Math.min(this.count - 1, Math.floor(q * this.count))]!
  }
}

export interface LaneCounters {
  sent: number
  succeeded: number
  retried: number
  failed: number
  /** records that left the backlog (delivered or dead-lettered) */
  settledRecords: number
}

const counter = (name: string, description: string) => Metric.counter(name, { description, incremental: true })
const sentTotal = counter("tributary_delivery_requests_sent_total", "requests sent to partners (every attempt)")
const succeededTotal = counter("tributary_delivery_requests_succeeded_total", "requests a partner answered with 2xx")
const retriedTotal = counter("tributary_delivery_requests_retried_total", "attempts answered 429, 408, 5xx, timed out or not connected, sent again")
const failedTotal = counter("tributary_delivery_requests_failed_total", "requests dead-lettered (refused, or every attempt failed)")
const latencyMs = Metric.histogram("tributary_delivery_latency_ms", {
  description: "time from sending a request to its answer",
  boundaries: Metric.exponentialBoundaries({ start: 1, factor: 2, count: 16 })
})
const freshnessMs = Metric.histogram("tributary_delivery_freshness_ms", {
  description: "time from a membership change's commit (the record's time) to its delivery",
  boundaries: Metric.exponentialBoundaries({ start: 10, factor: 2, count: 20 })
})
const currentRateGauge = Metric.gauge("tributary_delivery_rate", { description: "requests started in the last second, per lane" })
const allowedRateGauge = Metric.gauge("tributary_delivery_allowed_rate", { description: "the rate governor's current limit (lowered after 429s), per lane" })
const limitGauge = Metric.gauge("tributary_delivery_rate_limit", { description: "the lane's share of the destination's configured limit" })
const circuitGauge = Metric.gauge("tributary_delivery_circuit", { description: "circuit state per lane: 0 closed, 1 half-open, 2 open" })

const circuitValue: Record<CircuitState, number> = { closed: 0, "half-open": 1, open: 2 }

/**
 * `context` is the lane's (its metric registry): the per-request histograms are updated in place,
 * without an Effect step each, on a fast destination's hot path.
 */
export const makeLaneStats = (destination: string, lane: number, context: Context.Context<never>) => {
  const counters: LaneCounters = { sent: 0, succeeded: 0, retried: 0, failed: 0, settledRecords: 0 }
  const reported: LaneCounters = { ...counters }
  const latency = new Recent()
  const freshness = new Recent()
  const attributes = { destination }
  const laneAttributes = { destination, lane: String(lane) }
  // attributed once: a metric with attributes is a new key each time it is made
  const latencyOf = Metric.withAttributes(latencyMs, attributes)
  const freshnessOf = Metric.withAttributes(freshnessMs, attributes)
  const settled: Array<{ readonly at: number; readonly records: number }> = []
  const drainWindowMs = 5_000

  return {
    counters,
    latency: (ms: number): void => {
      latency.add(ms)
      latencyOf.updateUnsafe(ms, context)
    },
    freshness: (ms: number): void => {
      freshness.add(ms)
      freshnessOf.updateUnsafe(ms, context)
    },
    settled: (nowMs: number, records: number) => {
      counters.settledRecords += records
      settled.push({ at: nowMs, records })
    },
    /** records per second that left the backlog over the last few seconds */
    drainRate: (nowMs: number) => {
      while (settled.length > 0 && settled[0]!.at <= nowMs - drainWindowMs) settled.shift()
      return settled.reduce((sum, s) => sum + s.records, 0) / (drainWindowMs / 1000)
    },
    quantiles: () => ({
      latencyP50Ms: latency.quantile(0.5),
      latencyP99Ms: latency.quantile(0.99),
      freshnessP50Ms: freshness.quantile(0.5),
      freshnessP99Ms: freshness.quantile(0.99)
    }),
    /** Adds what happened since the last call to the Prometheus metrics. */
    report: (gauges: { readonly currentRate: number; readonly allowedRate: number; readonly limit: number; readonly circuit: CircuitState }) =>
      Effect.gen(function*() {
        yield* Metric.update(Metric.withAttributes(sentTotal, attributes), counters.sent - reported.sent)
        yield* Metric.update(Metric.withAttributes(succeededTotal, attributes), counters.succeeded - reported.succeeded)
        yield* Metric.update(Metric.withAttributes(retriedTotal, attributes), counters.retried - reported.retried)
        yield* Metric.update(Metric.withAttributes(failedTotal, attributes), counters.failed - reported.failed)
        Object.assign(reported, counters)
        yield* Metric.update(Metric.withAttributes(currentRateGauge, laneAttributes), gauges.currentRate)
        yield* Metric.update(Metric.withAttributes(allowedRateGauge, laneAttributes), gauges.allowedRate)
        yield* Metric.update(Metric.withAttributes(limitGauge, laneAttributes), gauges.limit)
        yield* Metric.update(Metric.withAttributes(circuitGauge, laneAttributes), circuitValue[gauges.circuit])
      })
  }
}
export type LaneStats = ReturnType<typeof makeLaneStats>
