/**
 * The delivery read model (issue 9 item 6): for each (profile, segment, destination), the latest
 * receipt of a request that carried one of the profile's records of that segment — what a profile's
 * explain view lists as `deliveries`. Fed from RECEIPTS (domain/delivery/Receipt.ts) by
 * infra/readmodel/receiptsSqlite.ts. Keeping the latest is order-free (the later `at` wins, then the
 * later stream sequence), so receipts applied twice or out of order leave the same rows.
 */
import { Context, Schema, Struct } from "effect"
import type { Effect } from "effect"
import { DeliveryRecord } from "../../domain/delivery/Chunk.ts"
import { Receipt, Receipts } from "../../domain/delivery/Receipt.ts"
import { profileId } from "../../domain/ingest/LoaderRecord.ts"
import type { ReadModelError } from "../ReadModelError.ts"

export const Delivery = Schema.Struct({
  destination: Schema.String,
  /** when the partner answered */
  at: Schema.String,
  /** the partner's HTTP status */
  status: Schema.Int
}).annotate({ identifier: "ProfileDelivery" })
export type Delivery = typeof Delivery.Type

/** One row of the read model. */
export interface DeliveryRow {
  readonly profile: string
  readonly segmentId: string
  readonly destination: string
  readonly at: string
  /** `at` in ms since the epoch, to compare */
  readonly atMillis: number
  readonly status: number
  readonly requestId: string
  /** the receipt's RECEIPTS stream sequence: the tie-break of two receipts at the same instant */
  readonly seq: number
}

/** Whether `a` is later than `b` (the one to keep). */
export const isLater = (a: Pick<DeliveryRow, "atMillis" | "seq">, b: Pick<DeliveryRow, "atMillis" | "seq">): boolean =>
  a.atMillis > b.atMillis || (a.atMillis === b.atMillis && a.seq > b.seq)

/**
 * A RECEIPTS message as the read model reads it (both shapes of domain/delivery/Receipt.ts): of a
 * record only whom and which segment, since decoding its `op` and `time` cost every receipt a
 * second date check for fields no row keeps.
 */
const records = { records: () => Schema.Array(DeliveryRecord.mapFields(Struct.pick(["idKind", "userId", "segmentId"]))) }
export const ReceiptsView = Schema.Union([
  Receipts.mapFields(Struct.evolve({ receipts: () => Schema.Array(Receipt.mapFields(Struct.omit(["destination"])).mapFields(Struct.evolve(records))) })),
  Receipt.mapFields(Struct.evolve(records))
])
export type ReceiptsView = typeof ReceiptsView.Type

/** The rows a batch of RECEIPTS messages gives: one per (profile, segment, destination), the latest of the batch. */
export const rowsOf = (messages: ReadonlyArray<{ readonly message: ReceiptsView; readonly seq: number }>): ReadonlyArray<DeliveryRow> => {
  const latest = new Map<string, DeliveryRow>()
  for (const { message, seq } of messages) {
    const { destination } = message
    for (const receipt of "receipts" in message ? message.receipts : [message]) {
      const atMillis = Date.parse(receipt.at)
      for (const record of receipt.records) {
        const profile = profileId(record.idKind, record.userId)
        const key = `${profile}\n${record.segmentId}\n${destination}`
        const before = latest.get(key)
        if (before !== undefined && !isLater({ atMillis, seq }, before)) continue
        latest.set(key, {
          profile,
          segmentId: record.segmentId,
          destination,
          at: receipt.at,
          atMillis,
          status: receipt.status,
          requestId: receipt.requestId,
          seq
        })
      }
    }
  }
  return [...latest.values()]
}

/** Reads of the delivery read model. Declared here; SQLite in infra/readmodel/receiptsSqlite.ts. */
export class DeliveryReadModel extends Context.Service<DeliveryReadModel, {
  /** The latest delivery per (segment, destination) of a profile, by segment id. */
  readonly deliveriesOf: (profile: string) => Effect.Effect<ReadonlyMap<string, ReadonlyArray<Delivery>>, ReadModelError>
}>()("tributary/DeliveryReadModel") {}
