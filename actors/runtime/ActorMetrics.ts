/**
 * Metrics of the actor runtime, one series per actor kind (attribute `kind`).
 *
 * Effect's metric registry is global, so every actor of a kind updates the same
 * series: depth and live count are gauges moved by deltas, never set, so that
 * many actors of one kind add up instead of overwriting each other.
 */
import { Effect, Metric } from "effect"

const mailboxDepth = Metric.gauge("tributary_actor_mailbox_depth", {
  description: "Messages waiting in the mailboxes of live actors"
})
const processingSeconds = Metric.histogram("tributary_actor_processing_seconds", {
  description: "Time an actor spent handling one message",
  boundaries: Metric.exponentialBoundaries({ start: 0.0005, factor: 2, count: 16 })
})
const restarts = Metric.counter("tributary_actor_restarts_total", {
  description: "Restarts after a failed setup or handler",
  incremental: true
})
const escalations = Metric.counter("tributary_actor_escalations_total", {
  description: "Actors that gave up after too many restarts and escalated to their parent",
  incremental: true
})
const liveActors = Metric.gauge("tributary_actor_live", { description: "Actors currently running" })
const processed = Metric.counter("tributary_actor_messages_processed_total", {
  description: "Messages handled, successfully or not",
  incremental: true
})
const passivations = Metric.counter("tributary_actor_passivations_total", {
  description: "Actors stopped after their idle timeout",
  incremental: true
})

/** The metrics of one actor kind. */
export interface ActorMetrics {
  readonly mailboxDepth: Metric.Metric<number, Metric.GaugeState<number>>
  readonly processingSeconds: Metric.Metric<number, Metric.HistogramState>
  readonly restarts: Metric.Metric<number, Metric.CounterState<number>>
  readonly escalations: Metric.Metric<number, Metric.CounterState<number>>
  readonly liveActors: Metric.Metric<number, Metric.GaugeState<number>>
  readonly processed: Metric.Metric<number, Metric.CounterState<number>>
  readonly passivations: Metric.Metric<number, Metric.CounterState<number>>
}

/** The metric series for `kind`. */
export const forKind = (kind: string): ActorMetrics => {
  const attributes = Metric.withAttributes({ kind })
  return {
    mailboxDepth: attributes(mailboxDepth),
    processingSeconds: attributes(processingSeconds),
    restarts: attributes(restarts),
    escalations: attributes(escalations),
    liveActors: attributes(liveActors),
    processed: attributes(processed),
    passivations: attributes(passivations)
  }
}

/** Adds `delta` to a gauge or counter (gauges are shared by all actors of a kind). */
export const add = (metric: Metric.Metric<number, unknown>, delta: number): Effect.Effect<void> =>
  Metric.modify(metric, delta)
