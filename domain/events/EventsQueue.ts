/**
 * The EVENTS stream as the device pipeline sees it (`events.<app>`, a work queue): the holder of an
 * app's lease takes that app's batches and acknowledges each only once what it produced is committed
 * (devices.db), so a crash leaves it to the next holder. Declared here; implemented on JetStream in
 * infra/events/eventsQueue.ts (one durable consumer per app, `events-<app>`).
 */
import { Context, Schema } from "effect"
import type { Effect, Scope, Stream } from "effect"
import type { EventBatch } from "./SdkEvent.ts"

export class EventsQueueError extends Schema.TaggedError<EventsQueueError>()("EventsQueueError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {}

/** One EVENTS message taken: held until acknowledged. */
export interface EventsDelivery {
  readonly batch: EventBatch
  /** its EVENTS stream sequence: what devices.db records as consumed, in the same transaction */
  readonly seq: number
  /** Removes it from EVENTS once the store confirmed (acknowledged and confirmed by the server). */
  readonly ack: Effect.Effect<void, EventsQueueError>
}

export class EventsQueue extends Context.Service<EventsQueue, {
  /** Apps with batches waiting on EVENTS, so an app's pipeline starts before anything else knows it. */
  readonly apps: Effect.Effect<ReadonlyArray<string>, EventsQueueError>
  /** Whether `app` has batches on EVENTS not acknowledged yet, taken or not: its pipeline's work. */
  readonly waiting: (app: string) => Effect.Effect<boolean, EventsQueueError>
  /**
   * Takes over `app`'s batches for the life of the Scope (its lease holder only): every batch not
   * acknowledged yet is delivered again, oldest first, then new ones; pulled only as fast as the stream
   * is consumed, in groups of at most `maxGroup` (whatever arrived, without waiting for more), so the
   * pipeline commits a group in one transaction. An undecodable message is dead-lettered and removed.
   */
  readonly take: (app: string, maxGroup: number) => Effect.Effect<Stream.Stream<ReadonlyArray<EventsDelivery>, EventsQueueError>, EventsQueueError, Scope.Scope>
}>()("tributary/EventsQueue") {}

/** The durable consumer name of an app's pipeline on EVENTS (the intake reads its pending count). */
export const eventsConsumerName = (app: string) => `events-${app}`
