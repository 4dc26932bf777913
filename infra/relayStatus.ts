/**
 * The relay as any process sees it, from what every process shares: the event store's head, HISTORY's
 * tail, the stored checkpoint and the relay's lease. Unlike the relay's own figures, these keep
 * moving when the relay is stuck, dead or fed a bad checkpoint, which is what readiness and the lag
 * metrics must show.
 */
import { Clock, Effect, Metric, Option, Result } from "effect"
import { EventStore } from "../domain/EventStore.ts"
import { leaseHolder } from "./nats/lease.ts"
import { relayLag } from "./relay.ts"
import { readCheckpoint } from "./relayCheckpoint.ts"
import { historyTail } from "./relayStreams.ts"

export const relayLagSeconds = Metric.gauge("tributary_relay_lag_seconds", {
  description: "Age of the oldest event in the store not yet relayed to HISTORY (0 when none waits)"
})

/** Reads the relay's status and sets the lag gauges from it. */
export const readRelayStatus = Effect.gen(function*() {
  const store = yield* EventStore
  const [head, tail, checkpoint, holder] = yield* Effect.all(
    [store.headPosition, historyTail, readCheckpoint("history"), leaseHolder("relay")],
    { concurrency: "unbounded" }
  )
  // what the relay is past: HISTORY's last event, or the checkpoint when skipped events follow it
  const relayed = Math.max(tail.position, Result.getOrElse(checkpoint, () => 0))
  const waiting = (head ?? 0) > relayed ? yield* store.readAll(relayed > 0 ? { fromPosition: relayed, maxCount: 2 } : { maxCount: 1 }) : []
  const oldest = waiting.find((event) => event.position > relayed)
  const now = yield* Clock.currentTimeMillis
  const lagSeconds = oldest === undefined ? 0 : Math.max(0, now - Date.parse(oldest.recordedAt)) / 1000
  const lagEvents = Math.max(0, (head ?? 0) - relayed)
  yield* Metric.update(relayLag, lagEvents)
  yield* Metric.update(relayLagSeconds, lagSeconds)
  return { relayed, lagEvents, lagSeconds, checkpoint, holder }
})

/** Why the relay is not doing its job, if it is not: its checkpoint is invalid, no one holds its lease, or it is stuck. */
export const relayProblem = (maxLagSeconds: number) =>
  Effect.map(readRelayStatus, (status): Option.Option<string> => {
    if (Result.isFailure(status.checkpoint)) {
      return Option.some(`its checkpoint is invalid (holds ${JSON.stringify(status.checkpoint.failure.stored)})`)
    }
    if (Option.isNone(status.holder)) return Option.some("no live process holds the relay's lease")
    if (status.lagSeconds > maxLagSeconds) {
      return Option.some(`stuck: ${status.lagEvents} events not in HISTORY, the oldest for ${Math.round(status.lagSeconds)} s`)
    }
    return Option.none()
  })
