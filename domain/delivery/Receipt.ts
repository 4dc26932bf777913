/**
 * One per delivered request (issue 9 item 6), on RECEIPTS (`receipt.<destination>`): the request id
 * (its Idempotency-Key), the partner's status and when. A profile's explain view lists them per
 * segment; the deliverer reads its destination's receipts back after a takeover, to skip requests
 * the partner already acknowledged.
 */
import { Schema } from "effect"
import { IsoDateTime } from "../isoDateTime.ts"
import { DeliveryRecord } from "./Chunk.ts"

export const Receipt = Schema.Struct({
  destination: Schema.String,
  /** the request's Idempotency-Key (domain/delivery/Chunk.ts `idempotencyKey`) */
  requestId: Schema.String,
  status: Schema.Int,
  at: IsoDateTime,
  records: Schema.Array(DeliveryRecord)
}).annotate({ identifier: "DeliveryReceipt" })
export type Receipt = typeof Receipt.Type
