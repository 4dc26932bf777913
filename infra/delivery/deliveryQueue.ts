/**
 * DeliveryQueue on JetStream: one durable pull consumer per destination lane on DELIVER
 * (`deliver-<destination>-<lane>`, single filter `deliver.<destination>.<lane>`: work queue filters
 * must not overlap). Taking a lane re-creates its consumer from the start of the stream, so every
 * chunk a killed holder had pulled and not acknowledged arrives again at once, oldest first, marked as
 * handed out before (the old consumer's last delivered sequence, read before it is replaced). Held
 * chunks report progress (`working`) every third of the ack wait, so a chunk waiting on an open
 * circuit for an hour is never redelivered meanwhile; `max_ack_pending` bounds the chunks held.
 */
import { AckPolicy, DeliverPolicy, JetStreamApiCodes } from "@nats-io/jetstream"
import type { JsMsg } from "@nats-io/jetstream"
import { nanos } from "@nats-io/transport-node"
import { Duration, Effect, Layer, Option, Schedule, Schema, Stream } from "effect"
import { Chunk } from "../../domain/delivery/Chunk.ts"
import { type ChunkDelivery, DeliveryQueue, DeliveryQueueError } from "../../domain/delivery/DeliveryQueue.ts"
import { deliverSubject, StreamNames } from "../../domain/subjects.ts"
import { makeDeadLetterWriter, setAsideUndecodable } from "../nats/deadLetters.ts"
import { freshConsumer, isApiError } from "../nats/freshConsumer.ts"
import { Nats, type NatsError, tryNats } from "../nats/Nats.ts"
import { consumeScoped } from "../nats/consumeScoped.ts"

export interface DeliveryQueueOptions {
  /** how long JetStream waits before redelivering a chunk its holder stopped reporting on; default 1 minute */
  readonly ackWait?: Duration.Input
}

const decodeChunk = Schema.decodeUnknownOption(Schema.fromJsonString(Chunk))
const toQueueError = (error: NatsError) => new DeliveryQueueError({ operation: error.operation, cause: error.cause })

const make = (options: DeliveryQueueOptions) => Effect.gen(function*() {
  const { jetstream, manager } = yield* Nats
  const deadLetters = yield* makeDeadLetterWriter
  const ackWait = Duration.toMillis(options.ackWait ?? "1 minute")

  const take = (destination: string, lane: number, { maxHeld }: { readonly maxHeld: number }) =>
    Effect.gen(function*() {
      const name = `deliver-${destination}-${lane}`
      // What the previous holder's consumer had handed out: re-created, it hands those out again as new.
      const handedOut = yield* tryNats("consumer info", () => manager.consumers.info(StreamNames.deliver, name)).pipe(
        Effect.map((info) => info.delivered.stream_seq),
        Effect.catchIf((error) => isApiError(error.cause, JetStreamApiCodes.ConsumerNotFound), () => Effect.succeed(0))
      )
      const consumer = yield* freshConsumer({ jetstream, manager }, StreamNames.deliver, {
        durable_name: name,
        filter_subject: deliverSubject(destination, lane),
        deliver_policy: DeliverPolicy.All,
        ack_policy: AckPolicy.Explicit,
        ack_wait: nanos(ackWait),
        max_ack_pending: maxHeld
      })
      const held = new Set<JsMsg>()
      yield* Effect.sync(() => held.forEach((msg) => msg.working())).pipe(
        Effect.repeat(Schedule.spaced(ackWait / 3)),
        Effect.forkScoped
      )
      const toDelivery = (msg: JsMsg): Effect.Effect<Option.Option<ChunkDelivery>> => {
        const chunk = decodeChunk(msg.string())
        if (Option.isNone(chunk) || chunk.value.destination !== destination || chunk.value.lane !== lane) {
          return setAsideUndecodable(deadLetters, StreamNames.deliver, msg, Option.isNone(chunk) ? "not a delivery chunk" : `a chunk of ${chunk.value.destination}.${chunk.value.lane} on ${msg.subject}`)
        }
        held.add(msg)
        return Effect.succeedSome({
          chunk: chunk.value,
          handedOutBefore: msg.seq <= handedOut || msg.info.deliveryCount > 1,
          storedAtMs: Math.floor(Number(msg.info.timestampNanos) / 1_000_000),
          // acknowledged and confirmed by the server: a chunk is gone from DELIVER before the next owner could see it again
          ack: Effect.suspend(() => held.delete(msg) ? tryNats("ack chunk", () => msg.ackAck()).pipe(Effect.ignore) : Effect.void)
        })
      }
      const messages = yield* consumeScoped("consume", () => consumer.consume({ max_messages: maxHeld }))
      return Stream.fromAsyncIterable(messages, (cause) => new DeliveryQueueError({ operation: "consume", cause })).pipe(
        Stream.mapEffect(toDelivery),
        Stream.filter(Option.isSome),
        Stream.map((some) => some.value)
      )
    }).pipe(Effect.mapError((error) => error instanceof DeliveryQueueError ? error : toQueueError(error)))

  return DeliveryQueue.of({ take })
})

export const layerJetStream = (options: DeliveryQueueOptions = {}) => Layer.effect(DeliveryQueue, make(options))
