/**
 * DeliveryLedger on JetStream: receipts on RECEIPTS (`receipt.<destination>`) and dead letters on DLQ
 * (`dlq.<destination>`), each published with its id as `Nats-Msg-Id` (a request repeated after a
 * takeover stores one receipt); lane statuses in the KV bucket `tributary-delivery-status` (gone 10 s
 * after their last write) and lane watermarks in `tributary-delivery-watermarks` (kept). A new
 * owner reads a chunk's receipts back with an ordered consumer that takes headers only (the ids are
 * `Nats-Msg-Id`s) from the time the chunk was stored: nothing older can be one of its receipts.
 *
 * Receipts and dead letters go through an AckedPublisher (infra/delivery/ackedPublisher.ts): each
 * awaited on its own acknowledgement, without a NATS request each, those of one event-loop round in
 * one socket write.
 */
import { Effect, Layer, Option, Schema } from "effect"
import { DeadLetter } from "../../domain/delivery/DeadLetter.ts"
import { DeliveryLedger, DeliveryLedgerError } from "../../domain/delivery/DeliveryLedger.ts"
import { DelivererStatus, deliveryStatusBucket } from "../../domain/delivery/DestinationStatus.ts"
import type { Receipt } from "../../domain/delivery/Receipt.ts"
import { deliveryWatermarkBucket, Watermark } from "../../domain/delivery/Watermark.ts"
import { deliveryDeadLetterSubject, receiptSubject, StreamNames } from "../../domain/subjects.ts"
import { openBucket } from "../nats/buckets.ts"
import { Nats, type NatsError, tryNats } from "../nats/Nats.ts"
import { scanSubject } from "../nats/scanSubject.ts"
import { makeAckedPublisher } from "./ackedPublisher.ts"

/** Receipts are built here from decoded chunks: their encoded form is the value itself, no schema pass per request. */
const encodeReceipt = (receipt: Receipt) => JSON.stringify(receipt)
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

  const publisher = yield* makeAckedPublisher(connection)
  const publish = (operation: string, subject: string, id: string, data: string) =>
    tryNats(operation, () => publisher.publish(subject, data, id)).pipe(Effect.mapError(toLedgerError))

  const receiptsOf = (destination: string, prefix: string, sinceMs: number) =>
    tryNats("read receipts", async () => {
      const found = new Set<string>()
      // a second earlier: the stream's and our clocks are one machine's, but be generous
      await scanSubject({ jetstream, manager }, StreamNames.receipts, receiptSubject(destination), { sinceMs: sinceMs - 1_000 }, (headers) => {
        const id = headers?.get("Nats-Msg-Id") ?? ""
        if (id.startsWith(prefix)) found.add(id)
      })
      return found
    }).pipe(Effect.mapError(toLedgerError))

  return DeliveryLedger.of({
    receipt: (receipt) => publish("publish receipt", receiptSubject(receipt.destination), receipt.requestId, encodeReceipt(receipt)),
    deadLetter: (deadLetter) => publish("publish dead letter", deliveryDeadLetterSubject(deadLetter.destination), deadLetter.id, encodeDeadLetter(deadLetter)),
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

