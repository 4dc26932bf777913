/**
 * What a deliverer writes down, and reads back after a takeover: receipts (RECEIPTS,
 * `receipt.<destination>`), dead letters (DLQ, `dlq.<destination>`), its status (KV bucket
 * `tributary-delivery-status`) and its lane's watermark (KV bucket `tributary-delivery-watermarks`).
 * Declared here; implemented on JetStream in infra/delivery/deliveryLedger.ts.
 */
import { Context, Schema } from "effect"
import type { Effect, Option } from "effect"
import type { DeadLetter } from "./DeadLetter.ts"
import type { DelivererStatus } from "./DestinationStatus.ts"
import type { Receipt } from "./Receipt.ts"
import type { Watermark } from "./Watermark.ts"

export class DeliveryLedgerError extends Schema.TaggedError<DeliveryLedgerError>()("DeliveryLedgerError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {}

/**
 * DLQ refused a dead letter: the destination's letters are at their bound, or DLQ is full. Not a
 * failure of the bus: the letter waits in its sender (and its lane sends nothing it could not
 * dead-letter) until some letters are replayed or discarded.
 */
export class DeadLettersFull extends Schema.TaggedError<DeadLettersFull>()("DeadLettersFull", {
  destination: Schema.String,
  reason: Schema.Literals(["subject full", "stream full"])
}) {}

export class DeliveryLedger extends Context.Service<DeliveryLedger, {
  /**
   * Stores a receipt (with the others of the same event-loop round, in one message). A request repeated
   * after a takeover may have a second receipt; the read model keeps the later.
   */
  readonly receipt: (receipt: Receipt) => Effect.Effect<void, DeliveryLedgerError>
  /** `receipt` for a hot path: `stored` is called once, with the error when it was not stored. */
  readonly storeReceipt: (receipt: Receipt, stored: (error?: DeliveryLedgerError) => void) => void
  /** Stores a dead letter (its id is its `Nats-Msg-Id`); DeadLettersFull when DLQ refuses it for its bounds. */
  readonly deadLetter: (deadLetter: DeadLetter) => Effect.Effect<void, DeliveryLedgerError | DeadLettersFull>
  /**
   * The request ids with a receipt or a dead letter among those starting with `prefix` (a chunk id and
   * a dot), looking at those of `destination` stored since `sinceMs`: what a new owner must not send again.
   */
  readonly receiptsOf: (destination: string, prefix: string, sinceMs: number) => Effect.Effect<ReadonlySet<string>, DeliveryLedgerError>
  /** The watermark of a lane (`<destination>.<lane>`): none before its first continuous chunk settled. */
  readonly watermark: (key: string) => Effect.Effect<Option.Option<Watermark>, DeliveryLedgerError>
  /** Stores a lane's watermark: before the ack of the chunk that moved it. */
  readonly setWatermark: (key: string, watermark: Watermark) => Effect.Effect<void, DeliveryLedgerError>
  /** Writes a lane's status under `key` (`<destination>.<lane>`). */
  readonly status: (key: string, status: DelivererStatus) => Effect.Effect<void, DeliveryLedgerError>
}>()("tributary/DeliveryLedger") {}
