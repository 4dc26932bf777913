/**
 * A destination's circuit (issue 9): after `failureThreshold` consecutive failures (5xx, timeouts,
 * connection errors — not 429, which the governor handles, and not other 4xx: the partner is up) the
 * circuit opens for a cool-down that doubles with each opening up to `maxCooldownMs`; then it is
 * half-open and lets one probe through; the probe's success closes it (and resets the cool-down), its
 * failure opens it again for longer. The backlog meanwhile stays on disk.
 *
 * Not effect's `persistence/CircuitBreaker`: that one wraps each call in an Effect, keeps its state in a
 * store service and fails calls while open; the deliverer instead asks, beside its rate governor and
 * with the same injected time, "may I send now, or how long do I sleep?", and reports the state in its
 * status every second. Pure, like `RateGovernor`: time comes in as `nowMs`; one actor owns the record.
 */
import type { CircuitState } from "./DestinationStatus.ts"
import type { OutcomeClass } from "./RetryPolicy.ts"

export interface CircuitOptions {
  readonly failureThreshold: number
  readonly baseCooldownMs: number
  readonly maxCooldownMs: number
}

export const defaultCircuitOptions: CircuitOptions = { failureThreshold: 5, baseCooldownMs: 1000, maxCooldownMs: 60_000 }

export interface Circuit {
  readonly options: CircuitOptions
  state: CircuitState
  consecutiveFailures: number
  /** openings since the circuit last closed after a success: the cool-down doubles with each */
  openings: number
  openUntil: number
  /** half-open: the probe was let through and has not answered yet */
  probing: boolean
}

export type CircuitAdmission =
  | { readonly ok: true; readonly probe: boolean }
  | { readonly ok: false; readonly waitMs: number }

export const make = (options: Partial<CircuitOptions> = {}): Circuit => ({
  options: { ...defaultCircuitOptions, ...options },
  state: "closed",
  consecutiveFailures: 0,
  openings: 0,
  openUntil: 0,
  probing: false
})

/** The cool-down of the `openings`-th opening (from 1). */
export const cooldownMs = (options: CircuitOptions, openings: number): number =>
  Math.min(options.maxCooldownMs, options.baseCooldownMs * 2 ** Math.max(0, openings - 1))

/** How long until a half-open probe may go, while a probe is out. */
const probeWaitMs = 100

/** May a request go at `nowMs`? Once the cool-down is over, the first one asking is the probe. */
export const admit = (c: Circuit, nowMs: number): CircuitAdmission => {
  if (c.state === "closed") return { ok: true, probe: false }
  if (c.state === "open") {
    if (nowMs < c.openUntil) return { ok: false, waitMs: c.openUntil - nowMs }
    c.state = "half-open"
    c.probing = false
  }
  if (c.probing) return { ok: false, waitMs: probeWaitMs }
  c.probing = true
  return { ok: true, probe: true }
}

const open = (c: Circuit, nowMs: number) => {
  c.openings++
  c.state = "open"
  c.openUntil = nowMs + cooldownMs(c.options, c.openings)
  c.probing = false
  c.consecutiveFailures = 0
}

/** The partner answered (2xx, or a 4xx that proves it is up): closes a half-open circuit. */
export const onSuccess = (c: Circuit): void => {
  // a request sent before the circuit opened proves little about now: the probe decides
  if (c.state === "open") return
  c.state = "closed"
  c.consecutiveFailures = 0
  c.openings = 0
  c.probing = false
}

/** A 5xx, 408, timeout or connection error. */
export const onFailure = (c: Circuit, nowMs: number): void => {
  if (c.state === "open") return
  if (c.state === "half-open") return open(c, nowMs)
  c.consecutiveFailures++
  if (c.consecutiveFailures >= c.options.failureThreshold) open(c, nowMs)
}

/** The state for the status (an open circuit whose cool-down ended is about to probe: half-open). */
export const stateAt = (c: Circuit, nowMs: number): CircuitState =>
  c.state === "open" && nowMs >= c.openUntil ? "half-open" : c.state

/** Records a request's outcome: delivered or rejected → the partner is up; retryable → a failure; throttled → neither. */
export const record = (c: Circuit, outcome: OutcomeClass, nowMs: number): void => {
  if (outcome === "delivered" || outcome === "rejected") onSuccess(c)
  else if (outcome === "retryable") onFailure(c, nowMs)
}
