/**
 * The command bus on JetStream. `send` publishes a command to CMD (`cmd.<type>.<id>`), which stores
 * it on disk before acknowledging, and waits for the entity's answer on this process's reply
 * subject. `incoming` pulls from one durable work-queue consumer: a message is acknowledged only
 * when its entity has answered, so a crash before that redelivers it (and the entity, which
 * remembers recent command ids, answers a redelivery without applying it twice).
 */
import { AckPolicy, DeliverPolicy, JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream"
import type { JsMsg } from "@nats-io/jetstream"
import { createInbox, headers, nanos } from "@nats-io/transport-node"
import { Deferred, Duration, Effect, Layer, Metric, Option, Schema, Stream } from "effect"
import { CommandBus, CommandBusError, CommandReply, CommandTimeout, type IncomingCommand } from "../../domain/CommandBus.ts"
import { EntityCommand } from "../../domain/entity.ts"
import { commandSubject, StreamNames } from "../../domain/subjects.ts"
import { Nats, type NatsError, tryNats } from "./Nats.ts"

const REPLY_TO = "Tributary-Reply-To"
const CONSUMER = "entity-actors"

const encoder = new TextEncoder()
const decodeCommand = Schema.decodeUnknownOption(Schema.fromJsonString(EntityCommand))
const decodeReply = Schema.decodeUnknownOption(Schema.fromJsonString(CommandReply))
const encodeReply = Schema.encodeSync(Schema.fromJsonString(CommandReply))

const toBusError = <E extends { readonly _tag: string }>(error: E | NatsError): E | CommandBusError =>
  error._tag === "NatsError" ? new CommandBusError({ operation: (error as NatsError).operation, cause: (error as NatsError).cause }) : error as E

const commands = Metric.counter("tributary_commands_total", { description: "commands sent to entities, by outcome" })

export interface CommandBusOptions {
  /** commands pulled but not yet answered, across this consumer (the bound on in-flight work) */
  readonly maxInFlight?: number
  /** how long JetStream waits for an answer before redelivering a command */
  readonly redeliverAfter?: Duration.Input
  readonly defaultTimeout?: Duration.Input
}

const bus = (options: CommandBusOptions) => Effect.gen(function*() {
  const { connection, jetstream, manager } = yield* Nats
  const maxInFlight = options.maxInFlight ?? 1_024

  const consumerConfig = {
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(Duration.toMillis(options.redeliverAfter ?? "30 seconds")),
    max_ack_pending: maxInFlight
  }
  // Created once; updated when the settings change (nats-server 2.10+ refuses a create that differs).
  yield* tryNats("update consumer", () => manager.consumers.update(StreamNames.commands, CONSUMER, consumerConfig)).pipe(
    Effect.catchIf(
      (error) => error.cause instanceof JetStreamApiError && error.cause.code === JetStreamApiCodes.ConsumerNotFound,
      () =>
        tryNats("add consumer", () =>
          manager.consumers.add(StreamNames.commands, { ...consumerConfig, durable_name: CONSUMER, deliver_policy: DeliverPolicy.All }))
    )
  )

  // One reply subscription per process; each pending send waits on its own Deferred.
  const prefix = createInbox()
  const pending = new Map<string, Deferred.Deferred<CommandReply>>()
  let sequence = 0
  const context = yield* Effect.context<never>()
  const log = (message: string, fields: Record<string, unknown>): void => void Effect.runForkWith(context)(Effect.logWarning(message, fields))
  const replies = connection.subscribe(`${prefix}.*`, {
    callback: (error, msg) => {
      if (error) return log("command replies: subscription error", { error: String(error) })
      const waiter = pending.get(msg.subject)
      if (waiter === undefined) return // its sender gave up (timeout)
      Option.match(decodeReply(msg.string()), {
        onNone: () => log("command replies: undecodable reply", { subject: msg.subject }),
        onSome: (reply) => Deferred.doneUnsafe(waiter, Effect.succeed(reply))
      })
    }
  })
  yield* Effect.addFinalizer(() => Effect.sync(() => replies.unsubscribe()))

  const send = (command: EntityCommand, sendOptions?: { readonly timeout?: Duration.Input }) => {
    const timeout = sendOptions?.timeout ?? options.defaultTimeout ?? "10 seconds"
    const replyTo = `${prefix}.${++sequence}`
    return Effect.acquireUseRelease(
      Effect.tap(Deferred.make<CommandReply>(), (waiter) => Effect.sync(() => pending.set(replyTo, waiter))),
      (waiter) =>
        Effect.gen(function*() {
          const h = headers()
          h.set(REPLY_TO, replyTo)
          yield* tryNats("publish command", () =>
            jetstream.publish(commandSubject(command.entityType, command.entityId), encoder.encode(JSON.stringify(command)), { headers: h }))
          const reply = yield* Deferred.await(waiter).pipe(
            Effect.timeoutOrElse({
              duration: timeout,
              orElse: () => Effect.fail(new CommandTimeout({ commandId: command.commandId, timeoutMillis: Duration.toMillis(timeout) }))
            })
          )
          yield* Metric.update(Metric.withAttributes(commands, { type: command.entityType, outcome: reply._tag === "Accepted" ? reply.outcome : reply._tag }), 1)
          return reply
        }),
      () => Effect.sync(() => pending.delete(replyTo))
    ).pipe(Effect.mapError(toBusError))
  }

  const toIncoming = (msg: JsMsg): Option.Option<IncomingCommand> => {
    const command = decodeCommand(msg.string())
    if (Option.isNone(command)) {
      // Nothing can ever handle it: drop it for good rather than redeliver it forever.
      msg.term("not a Tributary entity command")
      log("command bus: dropped a message that is not an entity command", { subject: msg.subject, seq: msg.seq })
      return Option.none()
    }
    const replyTo = msg.headers?.get(REPLY_TO)
    return Option.some({
      command: command.value,
      reply: (reply) =>
        Effect.sync(() => {
          if (replyTo) connection.publish(replyTo, encodeReply(reply))
          msg.ack()
        }),
      retryLater: (delay) => Effect.sync(() => msg.nak(Duration.toMillis(delay)))
    })
  }

  const incoming = Stream.unwrap(Effect.gen(function*() {
    const consumer = yield* tryNats("get consumer", () => jetstream.consumers.get(StreamNames.commands, CONSUMER))
    const messages = yield* Effect.acquireRelease(
      tryNats("consume", () => consumer.consume({ max_messages: Math.min(maxInFlight, 512) })),
      (messages) => Effect.promise(() => messages.close()).pipe(Effect.ignore)
    )
    return Stream.fromAsyncIterable(messages, (cause) => new CommandBusError({ operation: "consume", cause })).pipe(
      Stream.map(toIncoming),
      Stream.filter(Option.isSome),
      Stream.map((some) => some.value)
    )
  })).pipe(Stream.mapError(toBusError))

  return CommandBus.of({ send, incoming })
})

export const layerJetStream = (options: CommandBusOptions = {}) => Layer.effect(CommandBus, bus(options))
