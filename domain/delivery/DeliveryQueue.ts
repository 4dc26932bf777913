/**
 * DELIVER as a destination lane's deliverer sees it (`deliver.<destination>.<lane>`, a work queue):
 * the holder of the lane's lease takes its chunks in order, and acknowledges each only once every
 * request of it has a receipt or a dead letter, so a crash leaves the chunk to the lane's next
 * holder. Declared here; implemented on JetStream in infra/delivery/deliveryQueue.ts.
 */
import { Context, Schema } from "effect"
import type { Effect, Scope, Stream } from "effect"
import type { Chunk } from "./Chunk.ts"

export class DeliveryQueueError extends Schema.TaggedError<DeliveryQueueError>()("DeliveryQueueError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {}

/** One chunk taken from DELIVER: held (its ack deadline kept moving) until acknowledged. */
export interface ChunkDelivery {
  readonly chunk: Chunk
  /** how many times DELIVER has handed it out (1 the first time; more after a takeover) */
  readonly deliveries: number
  /** when it was stored on DELIVER (ms since epoch): no receipt of it can be older */
  readonly storedAtMs: number
  /** Every request of it has a receipt or a dead letter: removed from DELIVER. */
  readonly ack: Effect.Effect<void>
}

export class DeliveryQueue extends Context.Service<DeliveryQueue, {
  /**
   * Takes over a lane's chunks for the life of the Scope (its lease holder only): every chunk not
   * acknowledged yet is handed out again, oldest first, then new ones; at most `maxHeld` chunks are
   * held unacknowledged at once. An undecodable chunk is dead-lettered (DEADLETTERS) and removed.
   */
  readonly take: (
    destination: string,
    lane: number,
    options: { readonly maxHeld: number }
  ) => Effect.Effect<Stream.Stream<ChunkDelivery, DeliveryQueueError>, DeliveryQueueError, Scope.Scope>
}>()("tributary/DeliveryQueue") {}
