/**
 * EventsQueue on JetStream: one durable pull consumer per app on EVENTS (`events-<app>`, single filter
 * `events.<app>`: work queue filters must not overlap). Taking an app re-creates its consumer, so
 * every batch a killed holder had pulled and not acknowledged arrives again at once, oldest first.
 * A batch is acknowledged with the server's confirmation (`ackAck`), after devices.db committed it.
 * A batch the intake marked as checked is taken as it is, any other decoded (domain/checked.ts); one
 * that does not decode, or names another app than its subject, is set aside on DEADLETTERS.
 */
import { AckPolicy, DeliverPolicy, JetStreamApiCodes } from "@nats-io/jetstream"
import type { JsMsg } from "@nats-io/jetstream"
import { nanos } from "@nats-io/transport-node"
import { Duration, Effect, Layer, Option, Stream } from "effect"
import { type EventsDelivery, eventsConsumerName, EventsQueue, EventsQueueError } from "../../domain/events/EventsQueue.ts"
import { checkedHeader, readChecked } from "../../domain/checked.ts"
import { decodeJson } from "../../domain/decodeJson.ts"
import { EventBatch, eventBatchMark } from "../../domain/events/SdkEvent.ts"
import { allEvents, eventsSubject, StreamNames } from "../../domain/subjects.ts"
import { arrivedGroups } from "../arrivedGroups.ts"
import { makeDeadLetterWriter, setAsideUndecodable } from "../nats/deadLetters.ts"
import { freshConsumer, isApiError } from "../nats/freshConsumer.ts"
import { Nats, type NatsError, tryNats } from "../nats/Nats.ts"
import { subjectCount } from "../nats/scanSubject.ts"
import { consumeScoped } from "../nats/consumeScoped.ts"

export interface EventsQueueOptions {
  /** how long JetStream waits before delivering a batch again that its holder did not acknowledge; default 1 minute */
  readonly ackWait?: Duration.Input
  /** batches of one app pulled and not acknowledged yet; default 1,024 */
  readonly maxAckPending?: number
}

/** A batch the intake marked as checked is taken as it is; any other is decoded (domain/checked.ts). */
const readBatch = readChecked(eventBatchMark, decodeJson(EventBatch))
const toQueueError = (error: NatsError) => new EventsQueueError({ operation: error.operation, cause: error.cause })

const make = (options: EventsQueueOptions) => Effect.gen(function*() {
  const { jetstream, manager } = yield* Nats
  const deadLetters = yield* makeDeadLetterWriter
  const maxAckPending = options.maxAckPending ?? 1_024

  const apps = tryNats("events subjects", () => manager.streams.info(StreamNames.events, { subjects_filter: allEvents })).pipe(
    Effect.map((info) => Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice("events.".length))),
    Effect.catchIf((error) => isApiError(error.cause, JetStreamApiCodes.StreamNotFound), () => Effect.succeed([])),
    Effect.mapError(toQueueError)
  )

  // a work queue: what is acknowledged leaves the stream, so what is left of the app's subject is its work
  const waiting = (app: string) =>
    tryNats("events waiting", () => subjectCount(manager, StreamNames.events, eventsSubject(app))).pipe(
      Effect.map((count) => count > 0),
      Effect.mapError(toQueueError)
    )

  const take = (app: string, maxGroup: number) =>
    Effect.gen(function*() {
      const consumer = yield* freshConsumer({ jetstream, manager }, StreamNames.events, {
        durable_name: eventsConsumerName(app),
        filter_subject: eventsSubject(app),
        deliver_policy: DeliverPolicy.All,
        ack_policy: AckPolicy.Explicit,
        ack_wait: nanos(Duration.toMillis(options.ackWait ?? "1 minute")),
        max_ack_pending: maxAckPending
      })
      const toDelivery = (msg: JsMsg): Effect.Effect<Option.Option<EventsDelivery>> => {
        const batch = readBatch(msg.string(), msg.headers?.get(checkedHeader))
        if (Option.isNone(batch) || batch.value.app !== app) {
          return setAsideUndecodable(deadLetters, StreamNames.events, msg, Option.isNone(batch) ? "not an EventBatch" : `a batch of app ${batch.value.app} on ${msg.subject}`)
        }
        return Effect.succeedSome({
          batch: batch.value,
          seq: msg.seq,
          ack: tryNats("ack", () => msg.ackAck()).pipe(Effect.asVoid, Effect.mapError(toQueueError))
        })
      }
      // Pulled ahead by a few batches only: a message held here past the ack wait comes again and goes
      // through dedupe twice (256 ahead did under load: 60,000 of a bench's 220,000 events).
      const messages = yield* consumeScoped("consume", () => consumer.consume({ max_messages: Math.min(maxAckPending, maxGroup * 4) }))
      // Grouped before decoding (decoding is most of the cost): a group is what the server had sent.
      const groups = yield* arrivedGroups(Stream.fromAsyncIterable(messages, (cause) => new EventsQueueError({ operation: "consume", cause })), maxGroup)
      return groups.pipe(
        Stream.mapEffect((group) =>
          Effect.map(Effect.forEach(group, toDelivery), (decoded) => decoded.filter(Option.isSome).map((some) => some.value))),
        Stream.filter((group) => group.length > 0)
      )
    }).pipe(Effect.mapError((error) => error instanceof EventsQueueError ? error : toQueueError(error)))

  return EventsQueue.of({ apps, waiting, take })
})

export const layerJetStream = (options: EventsQueueOptions = {}) => Layer.effect(EventsQueue, make(options))
