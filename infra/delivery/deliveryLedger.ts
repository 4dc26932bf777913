/**
 * DeliveryLedger on JetStream: receipts on RECEIPTS (`receipt.<destination>`) and dead letters on DLQ
 * (`dlq.<destination>`), each published with its id as `Nats-Msg-Id` (a request repeated after a
 * takeover stores one receipt); lane statuses in the KV bucket `tributary-delivery-status`. A new
 * owner reads a chunk's receipts back with an ordered consumer that takes headers only (the ids are
 * `Nats-Msg-Id`s) from the time the chunk was stored: nothing older can be one of its receipts.
 *
 * Receipts and dead letters go through an AckedPublisher (infra/delivery/ackedPublisher.ts): each
 * awaited on its own acknowledgement, without a NATS request each, those of one event-loop round in
 * one socket write.
 */
import { DeliverPolicy, JetStreamApiCodes } from "@nats-io/jetstream"
import { Effect, Layer, Schema } from "effect"
import { DeadLetter } from "../../domain/delivery/DeadLetter.ts"
import { DeliveryLedger, DeliveryLedgerError } from "../../domain/delivery/DeliveryLedger.ts"
import { DelivererStatus, deliveryStatusBucket } from "../../domain/delivery/DestinationStatus.ts"
import type { Receipt } from "../../domain/delivery/Receipt.ts"
import { deliveryDeadLetterSubject, receiptSubject, StreamNames } from "../../domain/subjects.ts"
import { openBucket } from "../nats/buckets.ts"
import { isApiError } from "../nats/freshConsumer.ts"
import { Nats, type NatsError, tryNats } from "../nats/Nats.ts"
import { makeAckedPublisher } from "./ackedPublisher.ts"

/** Receipts are built here from decoded chunks: their encoded form is the value itself, no schema pass per request. */
const encodeReceipt = (receipt: Receipt) => JSON.stringify(receipt)
const encodeDeadLetter = Schema.encodeSync(Schema.fromJsonString(DeadLetter))
const encodeStatus = Schema.encodeSync(Schema.fromJsonString(DelivererStatus))
const toLedgerError = (error: NatsError) => new DeliveryLedgerError({ operation: error.operation, cause: error.cause })

const make = Effect.gen(function*() {
  const { connection, jetstream, manager } = yield* Nats
  // Entries live the bucket's TTL after their last write: a stopped deliverer's status goes with it.
  const statuses = yield* openBucket(deliveryStatusBucket).pipe(Effect.mapError(toLedgerError))

  const publisher = yield* makeAckedPublisher(connection)
  const publish = (operation: string, subject: string, id: string, data: string) =>
    tryNats(operation, () => publisher.publish(subject, data, id)).pipe(Effect.mapError(toLedgerError))

  const receiptsOf = (destination: string, prefix: string, sinceMs: number) =>
    tryNats("read receipts", async () => {
      const found = new Set<string>()
      // a second earlier: the stream's and our clocks are one machine's, but be generous
      const from = sinceMs - 1_000
      // the destination's last receipt now: the scan ends there (and is skipped when it is older)
      const last = await manager.streams.getMessage(StreamNames.receipts, { last_by_subj: receiptSubject(destination) })
        .catch((error: unknown) => isApiError(error, JetStreamApiCodes.NoMessageFound) ? null : Promise.reject(error))
      if (last === null || last.time.getTime() < from) return found
      const consumer = await jetstream.consumers.get(StreamNames.receipts, {
        // one subject as a string: nats-server 2.9 takes a single filter only
        filter_subjects: receiptSubject(destination),
        deliver_policy: DeliverPolicy.StartTime,
        opt_start_time: new Date(from).toISOString(),
        headers_only: true
      })
      try {
        for (;;) {
          const batch = await consumer.fetch({ max_messages: 1_000, expires: 2_000 })
          let seen = 0
          let reachedLast = false
          for await (const msg of batch) {
            seen++
            const id = msg.headers?.get("Nats-Msg-Id") ?? ""
            if (id.startsWith(prefix)) found.add(id)
            if (msg.seq >= last.seq) reachedLast = true
          }
          if (seen === 0 || reachedLast) return found
        }
      } finally {
        await consumer.delete().catch(() => undefined)
      }
    }).pipe(Effect.mapError(toLedgerError))

  return DeliveryLedger.of({
    receipt: (receipt) => publish("publish receipt", receiptSubject(receipt.destination), receipt.requestId, encodeReceipt(receipt)),
    deadLetter: (deadLetter) => publish("publish dead letter", deliveryDeadLetterSubject(deadLetter.destination), deadLetter.id, encodeDeadLetter(deadLetter)),
    receiptsOf,
    status: (key, status) => tryNats("write delivery status", () => statuses.put(key, encodeStatus(status))).pipe(Effect.asVoid, Effect.mapError(toLedgerError))
  })
})

export const layerJetStream = Layer.effect(DeliveryLedger, make)

