/**
 * A destination's status (the Contract's JSON) from its parts: the configured limit (the entity), what
 * its deliverers wrote (one entry, or one per lane), the backlog on DELIVER and the dead letters. Pure.
 */
import type { Backlog } from "./DeliveryBacklog.ts"
import type { CircuitState, DelivererStatus, DestinationStatus } from "./DestinationStatus.ts"

/**
 * A deliverer's rates are its last second's: an entry not rewritten for this long is from a process
 * that stopped (its counters stay true, its rates no longer are).
 */
export const staleAfterMillis = 5_000

export interface StatusParts {
  readonly ratePerSecond: number
  readonly deliverers: ReadonlyArray<DelivererStatus>
  readonly backlog: Backlog
  readonly deadLetters: number
  readonly nowMillis: number
}

const worst: Record<CircuitState, number> = { closed: 0, "half-open": 1, open: 2 }

const sum = (entries: ReadonlyArray<DelivererStatus>, field: "sent" | "succeeded" | "retried" | "failed" | "currentRate" | "drainRate") =>
  entries.reduce((total, entry) => total + entry[field], 0)

/** Percentiles of lanes cannot be merged exactly: the slowest lane's is shown (an upper bound). */
const slowest = (values: ReadonlyArray<number | null>): number | null =>
  values.reduce<number | null>((max, v) => v === null ? max : max === null ? v : Math.max(max, v), null)

/**
 * Counters and rates add up over lanes; the circuit shown is the worst lane's; the ETA is the backlog
 * over the rate records leave at (null when nothing drains; 0 when nothing waits); dead letters are
 * refused when a live lane says so.
 */
export const statusOf = (parts: StatusParts): DestinationStatus => {
  const live = parts.deliverers.filter((entry) => parts.nowMillis - entry.at <= staleAfterMillis)
  const drainRate = sum(live, "drainRate")
  const records = parts.backlog.records
  return {
    ratePerSecond: parts.ratePerSecond,
    currentRate: sum(live, "currentRate"),
    sent: sum(parts.deliverers, "sent"),
    succeeded: sum(parts.deliverers, "succeeded"),
    retried: sum(parts.deliverers, "retried"),
    failed: sum(parts.deliverers, "failed"),
    deadLetters: parts.deadLetters,
    backlog: records,
    etaSeconds: records === 0 ? 0 : drainRate > 0 ? Math.ceil(records / drainRate) : null,
    latencyP50Ms: slowest(parts.deliverers.map((entry) => entry.latencyP50Ms)),
    latencyP99Ms: slowest(parts.deliverers.map((entry) => entry.latencyP99Ms)),
    circuit: parts.deliverers.reduce<CircuitState>((state, entry) => worst[entry.circuit] > worst[state] ? entry.circuit : state, "closed"),
    deadLettersRefused: live.some((entry) => entry.deadLettersRefused === true)
  }
}
