/**
 * DeliveryLedger on JetStream: receipts on RECEIPTS (`receipt.<destination>`), those of one event-loop
 * round in one message (infra/delivery/receiptBatches.ts), and dead letters on DLQ
 * (`dlq.<destination>`), each with its id as `Nats-Msg-Id` and its place in the index by id
 * (infra/delivery/deadLetterIndex.ts); lane statuses in the KV bucket
 * `tributary-delivery-status` (gone 10 s after their last write) and lane watermarks in
 * `tributary-delivery-watermarks` (kept). A new owner reads a chunk's receipts and dead letters back
 * with ordered consumers that take headers only (the request ids header; a single receipt's or a dead
 * letter's `Nats-Msg-Id`) from the time the chunk was stored: nothing older can be one of its requests'.
 *
 * Both go through an AckedPublisher (infra/nats/ackedPublisher.ts): each message awaited on its
 * own acknowledgement, without a NATS request each.
 */
import { Effect, Layer, Option, Schema } from "effect"
import { DeadLetter } from "../../domain/delivery/DeadLetter.ts"
import { DeadLettersFull, DeliveryLedger, DeliveryLedgerError } from "../../domain/delivery/DeliveryLedger.ts"
import { DelivererStatus, deliveryStatusBucket } from "../../domain/delivery/DestinationStatus.ts"
import type { Receipt } from "../../domain/delivery/Receipt.ts"
import { deliveryWatermarkBucket, Watermark } from "../../domain/delivery/Watermark.ts"
import { deliveryDeadLetterSubject, receiptSubject, StreamNames } from "../../domain/subjects.ts"
import { openBucket } from "../nats/buckets.ts"
import { Nats, type NatsError, tryNats } from "../nats/Nats.ts"
import { scanSubject } from "../nats/scanSubject.ts"
import { makeAckedPublisher } from "../nats/ackedPublisher.ts"
import { makeStreamBytes, messageBytes } from "../nats/streamBytes.ts"
import { streamFull, type StreamFull } from "../nats/streamFull.ts"
import { makeDeadLetterIndex } from "./deadLetterIndex.ts"
import { makeReceiptBatches, requestIdsHeader } from "./receiptBatches.ts"

const encodeDeadLetter = Schema.encodeSync(Schema.fromJsonString(DeadLetter))
const encodeStatus = Schema.encodeSync(Schema.fromJsonString(DelivererStatus))
const WatermarkJson = Schema.fromJsonString(Watermark)
const encodeWatermark = Schema.encodeSync(WatermarkJson)
const decodeWatermark = Schema.decodeUnknownOption(WatermarkJson)
const toLedgerError = (error: NatsError) => new DeliveryLedgerError({ operation: error.operation, cause: error.cause })

const make = Effect.gen(function*() {
  const { connection, jetstream, manager } = yield* Nats
  // Entries live the bucket's TTL after their last write: a stopped deliverer's status goes with it.
  const statuses = yield* openBucket(deliveryStatusBucket).pipe(Effect.mapError(toLedgerError))
  const watermarks = yield* openBucket(deliveryWatermarkBucket, { ttl: "forever" }).pipe(Effect.mapError(toLedgerError))

  const index = yield* makeDeadLetterIndex.pipe(Effect.mapError(toLedgerError))
  const publisher = yield* makeAckedPublisher(connection)
  const dlqBytes = yield* makeStreamBytes(StreamNames.deliveryDeadLetters)
  const receiptStored = makeReceiptBatches((destination, body, headers) => publisher.publish(receiptSubject(destination), body, headers))
  const storeReceipt = (receipt: Receipt, stored: (error?: DeliveryLedgerError) => void) =>
    receiptStored(receipt, (failure) => stored(failure === undefined ? undefined : new DeliveryLedgerError({ operation: "publish receipt", cause: failure.cause })))

  const receiptsOf = (destination: string, prefix: string, sinceMs: number) =>
    tryNats("read receipts", async () => {
      const found = new Set<string>()
      const keep = (id: string) => {
        if (id.startsWith(prefix)) found.add(id)
      }
      // a second earlier: the stream's and our clocks are one machine's, but be generous
      const since = { sinceMs: sinceMs - 1_000 }
      await scanSubject({ jetstream, manager }, StreamNames.receipts, receiptSubject(destination), since, (headers) => {
        const ids = headers?.has(requestIdsHeader) ? headers.get(requestIdsHeader).split(" ") : [headers?.get("Nats-Msg-Id") ?? ""]
        ids.forEach(keep)
      })
      // a request refused for good has a dead letter instead: settled as well
      await scanSubject({ jetstream, manager }, StreamNames.deliveryDeadLetters, deliveryDeadLetterSubject(destination), since, (headers) =>
        keep(headers?.get("Nats-Msg-Id") ?? ""))
      return found
    }).pipe(Effect.mapError(toLedgerError))

  return DeliveryLedger.of({
    receipt: (receipt) =>
      Effect.callback<void, DeliveryLedgerError>((resume) => storeReceipt(receipt, (error) => resume(error === undefined ? Effect.void : Effect.fail(error)))),
    storeReceipt,
    // reserved in the index first, so that the index knows every letter (deadLetterIndex.ts); once stored,
    // a failure to write its sequence only leaves it found by a scan
    deadLetter: (deadLetter) => {
      const text = encodeDeadLetter(deadLetter)
      const full = (reason: StreamFull) => new DeadLettersFull({ destination: deadLetter.destination, reason })
      const published = index.reserve(deadLetter.destination, deadLetter.id).pipe(
        Effect.andThen(tryNats("publish dead letter", () =>
          publisher.publish(deliveryDeadLetterSubject(deadLetter.destination), text, { "Nats-Msg-Id": deadLetter.id })))
      )
      return dlqBytes.admit(messageBytes(text, deliveryDeadLetterSubject(deadLetter.destination), deadLetter.id), published).pipe(
        Effect.mapError((error) => {
          const reason = streamFull(error.cause)
          return reason === undefined ? toLedgerError(error) : full(reason)
        }),
        Effect.flatMap(Option.match({
          onNone: () => Effect.fail(full("stream full")),
          onSome: ({ seq }) =>
            index.stored(deadLetter.destination, deadLetter.id, seq).pipe(
              Effect.catch((error) => Effect.logWarning("a dead letter was stored but its place not indexed; finding it by id scans DLQ", { id: deadLetter.id, error }))
            )
        }))
      )
    },
    receiptsOf,
    // one that does not decode (written by another version) counts as none: chunks are sent, never skipped
    watermark: (key) =>
      tryNats("read delivery watermark", () => watermarks.get(key)).pipe(
        Effect.map((entry) => entry === null || entry.operation !== "PUT" ? Option.none() : decodeWatermark(entry.string())),
        Effect.mapError(toLedgerError)
      ),
    setWatermark: (key, watermark) =>
      tryNats("write delivery watermark", () => watermarks.put(key, encodeWatermark(watermark))).pipe(Effect.asVoid, Effect.mapError(toLedgerError)),
    status: (key, status) => tryNats("write delivery status", () => statuses.put(key, encodeStatus(status))).pipe(Effect.asVoid, Effect.mapError(toLedgerError))
  })
})

export const layerJetStream = Layer.effect(DeliveryLedger, make)

