/** Small numeric helpers shared by the benchmarks. */

export const round2 = (n: number): number => Math.round(n * 100) / 100

/** The q-quantile (0..1) of `values` by nearest rank; NaN when empty. */
export const percentile = (values: ReadonlyArray<number>, q: number): number => {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!
}

export interface LatencySummary {
  readonly count: number
  readonly p50: number
  readonly p99: number
  readonly max: number
}

/** p50 / p99 / max of latencies in milliseconds, rounded to 0.01 ms. */
export const latencies = (values: ReadonlyArray<number>): LatencySummary => ({
  count: values.length,
  p50: round2(percentile(values, 0.5)),
  p99: round2(percentile(values, 0.99)),
  max: round2(values.length === 0 ? Number.NaN : Math.max(...values))
})

export interface Throughput extends LatencySummary {
  readonly perSecond: number
  readonly seconds: number
  readonly errors: number
}

/** Operations per second over `seconds`, with the latency summary of the successful ones. */
export const throughput = (seconds: number, latencyMs: ReadonlyArray<number>, errors = 0): Throughput => ({
  perSecond: Math.round(latencyMs.length / seconds),
  seconds: round2(seconds),
  errors,
  ...latencies(latencyMs)
})

/** Runs `task(i)` for i in [0, count) with `concurrency` workers pulling from a shared counter. */
export const closedLoop = async (
  count: number,
  concurrency: number,
  task: (i: number, worker: number) => Promise<void>
): Promise<{ readonly seconds: number; readonly latencyMs: Array<number>; readonly errors: number; readonly firstError?: unknown }> => {
  const latencyMs: Array<number> = []
  let next = 0
  let errors = 0
  let firstError: unknown
  const started = performance.now()
  await Promise.all(Array.from({ length: concurrency }, async (_, worker) => {
    for (let i = next++; i < count; i = next++) {
      const t0 = performance.now()
      try {
        await task(i, worker)
        latencyMs.push(performance.now() - t0)
      } catch (error) {
        errors++
        firstError ??= error
      }
    }
  }))
  return { seconds: (performance.now() - started) / 1000, latencyMs, errors, ...(firstError === undefined ? {} : { firstError }) }
}

/** Wall time since the epoch in milliseconds with sub-millisecond resolution. */
export const nowMs = (): number => performance.timeOrigin + performance.now()
