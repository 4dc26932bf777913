/**
 * A destination's delivery status (issue 9, Contract): `GET /v1/destinations/{id}/status`. The process
 * delivering the destination writes its part (counters, rates, latency, circuit) to the KV bucket
 * `tributary-delivery-status` about once a second; the route adds the backlog and dead letters.
 */
import { Schema } from "effect"

export const CircuitState = Schema.Literals(["closed", "open", "half-open"])
export type CircuitState = typeof CircuitState.Type

export const DestinationStatus = Schema.Struct({
  /** the configured limit */
  ratePerSecond: Schema.Finite,
  /** requests sent in the last second (sliding), all owners together */
  currentRate: Schema.Finite,
  sent: Schema.Int,
  succeeded: Schema.Int,
  retried: Schema.Int,
  failed: Schema.Int,
  deadLetters: Schema.Int,
  /** records waiting: on DELIVER, and in the packages' outbox not yet on it */
  backlog: Schema.Int,
  /** backlog ÷ the rate records leave at; null when nothing drains */
  etaSeconds: Schema.NullOr(Schema.Finite),
  latencyP50Ms: Schema.NullOr(Schema.Finite),
  latencyP99Ms: Schema.NullOr(Schema.Finite),
  circuit: CircuitState,
  /**
   * a lane waits because DLQ refuses its dead letters (the destination's at their bound, or DLQ full):
   * it sends nothing more until some are replayed or discarded (since stop 21)
   */
  deadLettersRefused: Schema.Boolean
}).annotate({ identifier: "DestinationStatus" })
export type DestinationStatus = typeof DestinationStatus.Type

/** What the delivering process writes to `tributary-delivery-status` under the destination's id. */
export const DelivererStatus = Schema.Struct({
  /** the member id of the process that wrote it, and when (ms since epoch) */
  process: Schema.String,
  at: Schema.Int,
  ratePerSecond: Schema.Finite,
  /** the governor's current limit (below ratePerSecond after 429s: AIMD) */
  allowedRate: Schema.Finite,
  currentRate: Schema.Finite,
  sent: Schema.Int,
  succeeded: Schema.Int,
  retried: Schema.Int,
  failed: Schema.Int,
  /** records per second leaving the backlog, for the ETA */
  drainRate: Schema.Finite,
  latencyP50Ms: Schema.NullOr(Schema.Finite),
  latencyP99Ms: Schema.NullOr(Schema.Finite),
  /** time from a membership change's commit to its delivery */
  freshnessP50Ms: Schema.NullOr(Schema.Finite),
  freshnessP99Ms: Schema.NullOr(Schema.Finite),
  circuit: CircuitState,
  /** the last dead letter it offered was refused by DLQ for its bounds (absent: written before stop 21) */
  deadLettersRefused: Schema.optionalKey(Schema.Boolean)
}).annotate({ identifier: "DelivererStatus" })
export type DelivererStatus = typeof DelivererStatus.Type

export const deliveryStatusBucket = "tributary-delivery-status"
