/**
 * The INGEST stream as the translators see it (`ingest.<partner>`, a work queue): the holder of a
 * partner's translator lease takes that partner's messages, and acknowledges each only once its job
 * is done or failed, so a crash leaves it to the partner's next holder. Declared here; implemented
 * on JetStream in infra/ingest/ingestQueue.ts (one durable consumer per partner).
 */
import { Context, Schema } from "effect"
import type { Duration, Effect, Scope, Stream } from "effect"
import type { IngestMessage } from "./IngestMessage.ts"

export class IngestQueueError extends Schema.TaggedError<IngestQueueError>()("IngestQueueError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {}

/** One message taken from INGEST: held (its ack deadline kept moving) until settled. */
export interface IngestDelivery {
  readonly message: IngestMessage
  /** how many times INGEST has delivered it (1 the first time) */
  readonly deliveries: number
  /** Its job is done or failed: removed from INGEST. */
  readonly ack: Effect.Effect<void>
  /** Given back, to be delivered again after `delay` (a job that could not run now). */
  readonly retryLater: (delay: Duration.Input) => Effect.Effect<void>
}

export class IngestQueue extends Context.Service<IngestQueue, {
  /** Partners with messages waiting on INGEST (their subjects), so a partner is found before its entity is read. */
  readonly partners: Effect.Effect<ReadonlyArray<string>, IngestQueueError>
  /**
   * Takes over `partner`'s messages for the life of the Scope (its lease holder only): every message
   * not acknowledged yet is delivered again, oldest first, then new ones; pulled only as fast as the
   * stream is consumed. An undecodable message is dead-lettered and removed, never delivered.
   */
  readonly take: (partner: string) => Effect.Effect<Stream.Stream<IngestDelivery, IngestQueueError>, IngestQueueError, Scope.Scope>
}>()("tributary/IngestQueue") {}
