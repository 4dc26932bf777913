/**
 * Receipts by the round: those asked for in one round of the event loop are published at its end as
 * one RECEIPTS message per destination (domain/delivery/Receipt.ts `Receipts`), and each caller is
 * answered once that message is stored. A fast destination's requests answer many to a round, and
 * one message each (its publish, storage, acknowledgement, and its delivery to the receipts read
 * model) cost the deliverer and nats-server more than the HTTP request itself. A request's slot is
 * still held until its own receipt is stored, so a crash repeats no more than before. Callers are
 * answered by callback, not a promise each: a sender's hot path (actors/delivery/DeliveryActor.ts).
 *
 * Receipts are built from decoded chunks: their JSON is the value itself, no schema pass per request.
 * A message lists its request ids in a header (`Tributary-Request-Ids`, space-separated): a new owner
 * reads headers only to learn which requests of its chunks were delivered.
 */
import type { Receipt } from "../../domain/delivery/Receipt.ts"

export const requestIdsHeader = "Tributary-Request-Ids"

/** A message's receipts at most, and its body's length at most (a receipt longer than that goes alone). */
const maxReceipts = 256
const maxBodyLength = 64 * 1024

/** Called once a receipt is stored, or with why it was not. */
export type ReceiptStored = (failure?: { readonly cause: unknown }) => void

interface Waiting {
  readonly json: string
  readonly requestId: string
  readonly stored: ReceiptStored
}

/** `publish` sends one message (its subject is the destination's) and resolves once it is stored. */
export const makeReceiptBatches = (publish: (destination: string, body: string, headers: Readonly<Record<string, string>>) => Promise<unknown>) => {
  const round = new Map<string, Array<Waiting>>()

  const send = (destination: string, batch: ReadonlyArray<Waiting>) => {
    const body = `{"destination":${JSON.stringify(destination)},"receipts":[${batch.map((w) => w.json).join(",")}]}`
    publish(destination, body, { [requestIdsHeader]: batch.map((w) => w.requestId).join(" ") }).then(
      () => batch.forEach((w) => w.stored()),
      (cause: unknown) => batch.forEach((w) => w.stored({ cause }))
    )
  }

  const flush = () => {
    for (const [destination, waiting] of round) {
      let batch: Array<Waiting> = []
      let length = 0
      for (const w of waiting) {
        if (batch.length > 0 && (batch.length === maxReceipts || length + w.json.length > maxBodyLength)) {
          send(destination, batch)
          batch = []
          length = 0
        }
        batch.push(w)
        length += w.json.length + 1
      }
      send(destination, batch)
    }
    round.clear()
  }

  /** Calls `stored` once `receipt` is stored on RECEIPTS. */
  return (receipt: Receipt, stored: ReceiptStored): void => {
    if (round.size === 0) setImmediate(flush)
    const { destination, ...rest } = receipt
    const waiting = round.get(destination)
    const entry: Waiting = { json: JSON.stringify(rest), requestId: receipt.requestId, stored }
    if (waiting === undefined) round.set(destination, [entry])
    else waiting.push(entry)
  }
}
