/**
 * The command bus on JetStream. `send` publishes a command to CMD (`cmd.<type>.<shard>.<id>`), which
 * stores it on disk before acknowledging, and waits for the entity's answer on this process's reply
 * subject. `shard(n)` is for the holder of shard n's lease: it re-creates the shard's durable pull
 * consumer (single filter `cmd.*.<n>.*`, deliver all), so every command of the shard not answered yet
 * is delivered again in stream order, then consumes it. A message is acknowledged only when its
 * entity has answered, so a crash before that leaves it to the shard's next holder (and the entity,
 * which remembers recent command ids, answers a redelivery without applying it twice). While a shard
 * is held nothing is redelivered out of order: the acknowledgement wait is long and held messages
 * report progress (`working`) until answered.
 */
import { AckPolicy, DeliverPolicy, JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream"
import type { JsMsg } from "@nats-io/jetstream"
import { createInbox, headers, nanos } from "@nats-io/transport-node"
import { Clock, Deferred, Duration, Effect, Layer, Metric, Option, Schedule, Schema, Stream } from "effect"
import { CommandBus, CommandBusError, CommandReply, CommandTimeout, type IncomingCommand } from "../../domain/CommandBus.ts"
import { EntityCommand } from "../../domain/entity.ts"
import { defaultShards, shardOf } from "../../domain/shards.ts"
import { commandSubject, shardCommands, StreamNames } from "../../domain/subjects.ts"
import { Nats, type NatsError, tryNats } from "./Nats.ts"

const REPLY_TO = "Tributary-Reply-To"
/** The single consumer of the platform before shards; it would overlap every shard's (work queues forbid that). */
const LEGACY_CONSUMER = "entity-actors"
const consumerName = (shard: number) => `shard-${shard}`

const encoder = new TextEncoder()
const decodeCommand = Schema.decodeUnknownOption(Schema.fromJsonString(EntityCommand))
const decodeReply = Schema.decodeUnknownOption(Schema.fromJsonString(CommandReply))
const encodeReply = Schema.encodeSync(Schema.fromJsonString(CommandReply))

const toBusError = <E extends { readonly _tag: string }>(error: E | NatsError): E | CommandBusError =>
  error._tag === "NatsError" ? new CommandBusError({ operation: (error as NatsError).operation, cause: (error as NatsError).cause }) : error as E

const isApiError = (cause: unknown, code: number) => cause instanceof JetStreamApiError && cause.code === code

const commands = Metric.counter("tributary_commands_total", { description: "commands sent to entities, by outcome" })

export interface CommandBusOptions {
  /** shards commands are spread over (`SHARDS`); every process of a platform must agree */
  readonly shards?: number
  /** commands pulled but not yet answered, across this process's shards (the bound on in-flight work) */
  readonly maxInFlight?: number
  /**
   * how long JetStream waits for an answer before it would redeliver a command; held commands report
   * progress every third of it, so this only matters for a holder that hangs without losing its lease
   */
  readonly redeliverAfter?: Duration.Input
  readonly defaultTimeout?: Duration.Input
}

const bus = (options: CommandBusOptions) => Effect.gen(function*() {
  const { connection, jetstream, manager } = yield* Nats
  const shards = options.shards ?? defaultShards
  const redeliverAfter = Duration.toMillis(options.redeliverAfter ?? "1 minute")
  // Per shard, so a process holding few shards holds little; never so few that one busy entity stalls its shard.
  const maxAckPending = Math.max(128, Math.ceil((options.maxInFlight ?? 2_048) / shards))

  // Before shards, one consumer took every command; it would overlap the shards' consumers.
  yield* tryNats("delete legacy consumer", () => manager.consumers.delete(StreamNames.commands, LEGACY_CONSUMER)).pipe(
    Effect.catchIf((error) => isApiError(error.cause, JetStreamApiCodes.ConsumerNotFound), () => Effect.succeed(false))
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
          // Past this instant nobody waits for the answer: the entity answers Expired rather than apply it late.
          const deadline = command.deadline ?? (yield* Clock.currentTimeMillis) + Duration.toMillis(timeout)
          const h = headers()
          h.set(REPLY_TO, replyTo)
          const subject = commandSubject(command.entityType, shardOf(command.entityId, shards), command.entityId)
          yield* tryNats("publish command", () => jetstream.publish(subject, encoder.encode(JSON.stringify({ ...command, deadline })), { headers: h }))
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

  /** Re-creates the shard's consumer from the start of the stream: every unacknowledged command again, in order. */
  const retake = (shard: number) =>
    Effect.gen(function*() {
      const name = consumerName(shard)
      yield* tryNats(`delete consumer ${name}`, () => manager.consumers.delete(StreamNames.commands, name)).pipe(
        Effect.catchIf((error) => isApiError(error.cause, JetStreamApiCodes.ConsumerNotFound), () => Effect.succeed(false))
      )
      yield* tryNats(`add consumer ${name}`, () =>
        manager.consumers.add(StreamNames.commands, {
          durable_name: name,
          filter_subject: shardCommands(shard),
          deliver_policy: DeliverPolicy.All,
          ack_policy: AckPolicy.Explicit,
          ack_wait: nanos(redeliverAfter),
          max_ack_pending: maxAckPending
        }))
      return yield* tryNats(`get consumer ${name}`, () => jetstream.consumers.get(StreamNames.commands, name))
    })

  const shard = (n: number) =>
    Effect.gen(function*() {
      const consumer = yield* retake(n)
      // Messages pulled and not answered yet: they report progress so JetStream never redelivers them meanwhile.
      const held = new Set<JsMsg>()
      yield* Effect.sync(() => held.forEach((msg) => msg.working())).pipe(
        Effect.repeat(Schedule.spaced(redeliverAfter / 3)),
        Effect.forkScoped
      )
      const toIncoming = (msg: JsMsg): Option.Option<IncomingCommand> => {
        const command = decodeCommand(msg.string())
        if (Option.isNone(command)) {
          // Nothing can ever handle it: drop it for good rather than redeliver it forever.
          msg.term("not a Tributary entity command")
          log("command bus: dropped a message that is not an entity command", { subject: msg.subject, seq: msg.seq })
          return Option.none()
        }
        held.add(msg)
        const replyTo = msg.headers?.get(REPLY_TO)
        return Option.some({
          command: command.value,
          reply: (reply) =>
            Effect.sync(() => {
              if (replyTo) connection.publish(replyTo, encodeReply(reply))
              msg.ack()
              held.delete(msg)
            }),
          // Left unanswered (no nak: a redelivery now would land behind newer commands); the shard's next session takes it again in order.
          retryLater: () => Effect.sync(() => void held.delete(msg))
        })
      }
      const messages = yield* Effect.acquireRelease(
        tryNats("consume", () => consumer.consume({ max_messages: Math.min(maxAckPending, 256) })),
        (messages) => Effect.promise(() => messages.close()).pipe(Effect.ignore)
      )
      return Stream.fromAsyncIterable(messages, (cause) => new CommandBusError({ operation: "consume", cause })).pipe(
        Stream.map(toIncoming),
        Stream.filter(Option.isSome),
        Stream.map((some) => some.value)
      )
    }).pipe(Effect.mapError((error) => new CommandBusError({ operation: error.operation, cause: error.cause })))

  return CommandBus.of({ send, shard, shards })
})

export const layerJetStream = (options: CommandBusOptions = {}) => Layer.effect(CommandBus, bus(options))
