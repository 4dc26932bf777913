/**
 * Messages a consumer delivered `max_deliver` times without an acknowledgement. JetStream then stops
 * delivering them and publishes `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.<stream>.<consumer>`
 * (`stream_seq`, `deliveries`), but on a work queue the message stays in the stream (seen on
 * nats-server 2.9.10), where the next consumer of its subjects would start over with it. So the
 * platform follows these advisories: it fetches the message by sequence, writes it to DEADLETTERS,
 * answers its sender, then deletes it from the stream. One process of the platform takes each
 * advisory (a queue group); an advisory published while no process listens is lost, and the message
 * is then delivered afresh to the shard's next consumer.
 */
import type { MsgHdrs } from "@nats-io/transport-node"
import { Effect, Option, Schema, Stream } from "effect"
import type { Scope } from "effect"
import type { DeadLetterWriter } from "./deadLetters.ts"
import { Nats, type NatsError, tryNats } from "./Nats.ts"

const MaxDeliveriesAdvisory = Schema.Struct({ stream: Schema.String, consumer: Schema.String, stream_seq: Schema.Int, deliveries: Schema.Int })
const decodeAdvisory = Schema.decodeUnknownOption(Schema.fromJsonString(MaxDeliveriesAdvisory))

export const maxDeliveriesSubject = (stream: string) => `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${stream}.*`

/**
 * Dead-letters the messages of `stream` its consumers gave up on, for the life of the Scope;
 * `answer` tells a waiting sender (from the message's headers) why it gets no other answer.
 */
export const followMaxDeliveries = (
  stream: string,
  writer: DeadLetterWriter,
  answer: (headers: MsgHdrs | undefined, detail: string) => Effect.Effect<void>
): Effect.Effect<void, NatsError, Nats | Scope.Scope> =>
  Effect.gen(function*() {
    const { connection, manager } = yield* Nats
    const advisories = connection.subscribe(maxDeliveriesSubject(stream), { queue: "tributary-dead-letters" })
    yield* Effect.addFinalizer(() => Effect.sync(() => advisories.unsubscribe()))

    const deadLetter = (advisory: typeof MaxDeliveriesAdvisory.Type) =>
      Effect.gen(function*() {
        const seq = advisory.stream_seq
        const msg = yield* tryNats("get exhausted message", () => manager.streams.getMessage(stream, { seq }))
        if (msg === null) return // already gone: answered after all, or dead-lettered by another process
        const detail = `consumer ${advisory.consumer} delivered it ${advisory.deliveries} times without an answer`
        yield* writer.write({
          reason: "max-deliveries",
          detail,
          stream,
          subject: msg.subject,
          streamSequence: seq,
          deliveries: advisory.deliveries,
          headers: msg.header,
          data: msg.data
        })
        yield* answer(msg.header, detail)
        yield* tryNats("delete exhausted message", () => manager.streams.deleteMessage(stream, seq, false))
      }).pipe(
        // Left in the stream: the shard's next consumer delivers it again (and counts afresh).
        Effect.catch((error) => Effect.logWarning("dead letter: could not move an exhausted message", { stream, seq: advisory.stream_seq, error }))
      )

    yield* Stream.fromAsyncIterable(advisories, (cause) => cause).pipe(
      Stream.runForEach((msg) => Option.match(decodeAdvisory(msg.string()), { onNone: () => Effect.void, onSome: deadLetter })),
      Effect.ignore,
      Effect.forkScoped
    )
  })
