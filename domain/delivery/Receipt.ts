/**
 * One per delivered request (issue 9 item 6): the request id (its Idempotency-Key), the partner's
 * status and when. A profile's explain view lists them per segment; the deliverer reads its
 * destination's receipts back after a takeover, to skip requests the partner already acknowledged.
 *
 * On RECEIPTS (`receipt.<destination>`) they travel as `Receipts`: the receipts of one destination's
 * requests answered in the same round of a deliverer's event loop, one publish and one JetStream
 * acknowledgement for them all (one each cost a fast destination more than its HTTP request).
 * Messages written before that hold a single `Receipt`; the read model (projections/delivery/receipts.ts) reads both.
 */
import { Schema } from "effect"
import { IsoDateTime } from "../isoDateTime.ts"
import { DeliveryRecord } from "./Chunk.ts"

const fields = {
  /** the request's Idempotency-Key (domain/delivery/Chunk.ts `idempotencyKey`) */
  requestId: Schema.String,
  status: Schema.Int,
  at: IsoDateTime,
  records: Schema.Array(DeliveryRecord)
}

export const Receipt = Schema.Struct({ destination: Schema.String, ...fields }).annotate({ identifier: "DeliveryReceipt" })
export type Receipt = typeof Receipt.Type

/** A RECEIPTS message: several receipts of one destination. */
export const Receipts = Schema.Struct({
  destination: Schema.String,
  receipts: Schema.Array(Schema.Struct(fields))
}).annotate({ identifier: "DeliveryReceipts" })
export type Receipts = typeof Receipts.Type
