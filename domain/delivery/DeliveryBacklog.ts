/**
 * A destination's durable backlog (issue 9): the chunks waiting on DELIVER (`deliver.<destination>.<lane>`),
 * as the status route counts them. Declared here; on JetStream in
 * infra/delivery/deliveryBacklog.ts.
 */
import { Context, Effect, Schema } from "effect"

export interface Backlog {
  /** chunks still on DELIVER, every lane (those being sent included: a chunk leaves once all of it is settled) */
  readonly chunks: number
  /** the records they carry */
  readonly records: number
}

export class DeliveryBacklogError extends Schema.TaggedError<DeliveryBacklogError>()("DeliveryBacklogError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {}

export class DeliveryBacklog extends Context.Service<DeliveryBacklog, {
  readonly backlog: (destination: string) => Effect.Effect<Backlog, DeliveryBacklogError>
  /**
   * The lanes with chunks waiting, per destination (of `destination` only, when given): after `lanes`
   * was lowered, lanes past the new count still hold chunks, and deliver them sharing the limit; and
   * the package publisher holds a new split back until its destination has none (the lane barrier).
   */
  readonly lanesWaiting: (destination?: string) => Effect.Effect<ReadonlyMap<string, ReadonlySet<number>>, DeliveryBacklogError>
  /**
   * Removes the chunks waiting for the destination, all lanes (it was deleted); with `before` (a
   * `nextSequence` taken earlier) only those stored before then. Returns how many were removed.
   */
  readonly purge: (destination: string, before?: number) => Effect.Effect<number, DeliveryBacklogError>
  /** The sequence the next chunk stored will have, of any destination: a bound for `purge`. */
  readonly nextSequence: Effect.Effect<number, DeliveryBacklogError>
}>()("tributary/DeliveryBacklog") {}

/**
 * All that waits for a destination: on DELIVER, and before it in the package outbox (`outbox`: a
 * replay or a refresh on its way, chunks held at a lane barrier or by a full DELIVER). What the status
 * route reports and DELIVERY_REFRESH_MAX_BACKLOG bounds. The outbox is read first: a chunk published
 * between the two reads is then counted twice, never missed (read at once, it could be neither, and
 * a bound checked so let a refresh through past it).
 */
export const waitingFor = <E, R>(destination: string, outbox: (destination: string) => Effect.Effect<Backlog, E, R>) =>
  Effect.zipWith(
    outbox(destination),
    DeliveryBacklog.use((backlog) => backlog.backlog(destination)),
    (inOutbox, onDeliver): Backlog => ({ chunks: onDeliver.chunks + inOutbox.chunks, records: onDeliver.records + inOutbox.records })
  )
