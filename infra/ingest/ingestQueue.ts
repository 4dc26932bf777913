/**
 * IngestQueue on JetStream: one durable pull consumer per partner on INGEST (`ingest-<partner>`,
 * single filter `ingest.<partner>`: work queue filters must not overlap). Taking a partner re-creates
 * its consumer from the start of the stream, so every message a killed holder had pulled and not
 * acknowledged arrives again at once, oldest first. Held messages report progress (`working`) every
 * third of the ack wait, so a job that runs for an hour is never redelivered meanwhile; only a holder
 * that hangs without losing its lease would see its message delivered again after the ack wait.
 */
import { AckPolicy, DeliverPolicy, JetStreamApiCodes } from "@nats-io/jetstream"
import type { JsMsg } from "@nats-io/jetstream"
import { nanos } from "@nats-io/transport-node"
import { Duration, Effect, Layer, Option, Schedule, Schema, Stream } from "effect"
import { IngestMessage } from "../../domain/ingest/IngestMessage.ts"
import { type IngestDelivery, IngestQueue, IngestQueueError } from "../../domain/ingest/IngestQueue.ts"
import { allIngest, ingestSubject, StreamNames } from "../../domain/subjects.ts"
import { makeDeadLetterWriter, setAsideUndecodable } from "../nats/deadLetters.ts"
import { freshConsumer, isApiError } from "../nats/freshConsumer.ts"
import { Nats, type NatsError, tryNats } from "../nats/Nats.ts"
import { consumeScoped } from "../nats/consumeScoped.ts"

export interface IngestQueueOptions {
  /** how long JetStream waits before redelivering a message its holder stopped reporting on; default 1 minute */
  readonly ackWait?: Duration.Input
  /** messages of one partner pulled and not settled yet; default 1,024 */
  readonly maxAckPending?: number
}

const consumerName = (partner: string) => `ingest-${partner}`
const decodeMessage = Schema.decodeUnknownOption(Schema.fromJsonString(IngestMessage))
const toQueueError = (error: NatsError) => new IngestQueueError({ operation: error.operation, cause: error.cause })

const make = (options: IngestQueueOptions) => Effect.gen(function*() {
  const { jetstream, manager } = yield* Nats
  const deadLetters = yield* makeDeadLetterWriter
  const ackWait = Duration.toMillis(options.ackWait ?? "1 minute")
  const maxAckPending = options.maxAckPending ?? 1_024

  const partners = tryNats("ingest subjects", () => manager.streams.info(StreamNames.ingest, { subjects_filter: allIngest })).pipe(
    Effect.map((info) => Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice("ingest.".length))),
    Effect.catchIf((error) => isApiError(error.cause, JetStreamApiCodes.StreamNotFound), () => Effect.succeed([])),
    Effect.mapError(toQueueError)
  )

  const retake = (partner: string) =>
    freshConsumer({ jetstream, manager }, StreamNames.ingest, {
      durable_name: consumerName(partner),
      filter_subject: ingestSubject(partner),
      deliver_policy: DeliverPolicy.All,
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(ackWait),
      max_ack_pending: maxAckPending
    })

  const take = (partner: string) =>
    Effect.gen(function*() {
      const consumer = yield* retake(partner)
      const held = new Set<JsMsg>()
      yield* Effect.sync(() => held.forEach((msg) => msg.working())).pipe(
        Effect.repeat(Schedule.spaced(ackWait / 3)),
        Effect.forkScoped
      )
      const settle = (msg: JsMsg, how: (msg: JsMsg) => void) =>
        Effect.sync(() => {
          if (!held.delete(msg)) return
          how(msg)
        })
      const toDelivery = (msg: JsMsg): Effect.Effect<Option.Option<IngestDelivery>> => {
        const message = decodeMessage(msg.string())
        if (Option.isNone(message) || message.value.partner !== partner) {
          return setAsideUndecodable(deadLetters, StreamNames.ingest, msg, Option.isNone(message) ? "not an ingest message" : `an ingest message of ${message.value.partner} on ${msg.subject}`)
        }
        held.add(msg)
        return Effect.succeedSome({
          message: message.value,
          deliveries: msg.info.deliveryCount,
          ack: settle(msg, (m) => m.ack()),
          retryLater: (delay) => settle(msg, (m) => m.nak(Duration.toMillis(Duration.fromInputUnsafe(delay))))
        })
      }
      const messages = yield* consumeScoped("consume", () => consumer.consume({ max_messages: Math.min(maxAckPending, 64) }))
      return Stream.fromAsyncIterable(messages, (cause) => new IngestQueueError({ operation: "consume", cause })).pipe(
        Stream.mapEffect(toDelivery),
        Stream.filter(Option.isSome),
        Stream.map((some) => some.value)
      )
    }).pipe(Effect.mapError((error) => error instanceof IngestQueueError ? error : toQueueError(error)))

  return IngestQueue.of({ partners, take })
})

export const layerJetStream = (options: IngestQueueOptions = {}) => Layer.effect(IngestQueue, make(options))
