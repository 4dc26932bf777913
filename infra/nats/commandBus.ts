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
 *
 * A message the shard cannot handle (not a command, a command for an entity type this platform does
 * not run or for another shard) is written to DEADLETTERS (infra/nats/deadLetters.ts), its sender is
 * answered Failed, and it is acknowledged: removed, never redelivered. So is a message delivered
 * `maxDeliver` times without an answer (infra/nats/maxDeliveries.ts). (`term()` is not used: nats-server
 * 2.9 ignores a `+TERM` that carries a reason and redelivers the message at every ack wait.)
 */
import { AckPolicy, DeliverPolicy, JetStreamApiCodes } from "@nats-io/jetstream"
import type { JsMsg } from "@nats-io/jetstream"
import { createInbox, headers, type MsgHdrs, nanos } from "@nats-io/transport-node"
import { Clock, Deferred, Duration, Effect, Layer, Metric, Option, Schedule, Schema, Stream } from "effect"
import { checkedHeader, readChecked } from "../../domain/checked.ts"
import {
  CommandBatch,
  commandBatchMark,
  CommandBatchOutcomes,
  CommandBatchReply,
  CommandBus,
  CommandBusError,
  type CommandOutcome,
  CommandReply,
  CommandTimeout,
  entityCommandMark,
  type IncomingBatch,
  type IncomingCommand,
  invalidCommand,
  outcomeOf
} from "../../domain/CommandBus.ts"
import type { DeadLetterReason } from "../../domain/DeadLetters.ts"
import { decodeJson } from "../../domain/decodeJson.ts"
import { Deciders } from "../../domain/DeciderRegistry.ts"
import { CommandTooLarge, EntityCommand } from "../../domain/entity.ts"
import { defaultShards, shardOf } from "../../domain/shards.ts"
import { batchSubject, commandSubject, shardCommands, StreamNames } from "../../domain/subjects.ts"
import { makeDeadLetterWriter, undeliverable } from "./deadLetters.ts"
import { followMaxDeliveries } from "./maxDeliveries.ts"
import { Nats, NatsError, tryNats } from "./Nats.ts"
import { freshConsumer, isApiError } from "./freshConsumer.ts"
import { consumeScoped } from "./consumeScoped.ts"

const REPLY_TO = "Tributary-Reply-To"
/** The single consumer of the platform before shards; it would overlap every shard's (work queues forbid that). */
const LEGACY_CONSUMER = "entity-actors"
const consumerName = (shard: number) => `shard-${shard}`

const encoder = new TextEncoder()
// What a sender checked (checkCommand) comes marked, and is taken as it is; anything else is decoded (domain/checked.ts).
const readCommand = readChecked(entityCommandMark, decodeJson(EntityCommand))
const readBatch = readChecked(commandBatchMark, decodeJson(CommandBatch))
const decodeReply = Schema.decodeUnknownOption(Schema.fromJsonString(CommandReply))
const decodeBatchReply = Schema.decodeUnknownOption(Schema.fromJsonString(CommandBatchReply))
const decodeBatchOutcomes = Schema.decodeUnknownOption(Schema.fromJsonString(CommandBatchOutcomes))
const encodeReply = Schema.encodeSync(Schema.fromJsonString(CommandReply))
const encodeBatchReply = Schema.encodeSync(Schema.fromJsonString(CommandBatchReply))
const encodeBatchOutcomes = Schema.encodeSync(Schema.fromJsonString(CommandBatchOutcomes))
/** A command is checked before it is published: one the shard could not decode would never be answered. */
const checkCommand = (command: EntityCommand) =>
  Schema.decodeUnknownEffect(EntityCommand)(command).pipe(
    Effect.mapError((cause) => new NatsError({ operation: invalidCommand, cause: cause.message }))
  )
/** Subjects of batch messages start with this (domain/subjects.ts batchSubject). */
const batchPrefix = batchSubject(0, "x").split(".").slice(0, 2).join(".") + "."

const toBusError = <E extends { readonly _tag: string }>(error: E | NatsError): E | CommandBusError =>
  error._tag === "NatsError" ? new CommandBusError({ operation: (error as NatsError).operation, cause: (error as NatsError).cause }) : error as E


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
  /**
   * deliveries of a message without an answer before it is dead-lettered (`COMMAND_MAX_DELIVER`, default
   * 5). A held message is never redelivered, so this counts messages given back (`retryLater`) or left by
   * a hung holder; taking a shard re-creates its consumer, which counts afresh.
   */
  readonly maxDeliver?: number
}

export const defaultMaxDeliver = 5

const bus = (options: CommandBusOptions) => Effect.gen(function*() {
  const { connection, jetstream, manager } = yield* Nats
  const shards = options.shards ?? defaultShards
  const redeliverAfter = Duration.toMillis(options.redeliverAfter ?? "1 minute")
  // Per shard, so a process holding few shards holds little; never so few that one busy entity stalls its shard.
  const maxAckPending = Math.max(128, Math.ceil((options.maxInFlight ?? 2_048) / shards))
  const maxDeliver = Math.max(1, options.maxDeliver ?? defaultMaxDeliver)
  const deciders = yield* Deciders
  const deadLetters = yield* makeDeadLetterWriter

  // Before shards, one consumer took every command; it would overlap the shards' consumers.
  yield* tryNats("delete legacy consumer", () => manager.consumers.delete(StreamNames.commands, LEGACY_CONSUMER)).pipe(
    Effect.catchIf((error) => isApiError(error.cause, JetStreamApiCodes.ConsumerNotFound), () => Effect.succeed(false))
  )

  // One reply subscription per process; each pending send waits on its own Deferred for the raw answer.
  const prefix = createInbox()
  // Answers go only to inboxes like the senders' own: a reply header naming a stream's subject
  // (`checkpoint.history`, `cmd.…`) would have the platform write its answer into that stream.
  const inboxes = `${prefix.slice(0, prefix.lastIndexOf("."))}.`
  const replyTarget = (h: MsgHdrs | undefined) => {
    const replyTo = h?.get(REPLY_TO)
    return replyTo?.startsWith(inboxes) ? replyTo : undefined
  }
  const pending = new Map<string, Deferred.Deferred<string>>()
  let sequence = 0
  const context = yield* Effect.context<never>()
  const log = (message: string, fields: Record<string, unknown>): void => void Effect.runForkWith(context)(Effect.logWarning(message, fields))
  const replies = connection.subscribe(`${prefix}.*`, {
    callback: (error, msg) => {
      if (error) return log("command replies: subscription error", { error: String(error) })
      const waiter = pending.get(msg.subject)
      if (waiter !== undefined) Deferred.doneUnsafe(waiter, Effect.succeed(msg.string())) // else its sender gave up
    }
  })
  yield* Effect.addFinalizer(() => Effect.sync(() => replies.unsubscribe()))

  /** Tells a waiting sender (the message's reply header) why its command gets no other answer. */
  const answerDeadLetter = (h: MsgHdrs | undefined, reason: DeadLetterReason, detail: string) =>
    Effect.sync(() => {
      const replyTo = replyTarget(h)
      if (replyTo) connection.publish(replyTo, encodeReply({ _tag: "Failed", message: `dead letter (${reason}): ${detail}` }))
    })
  yield* followMaxDeliveries(StreamNames.commands, deadLetters, (h, detail) => answerDeadLetter(h, "max-deliveries", detail))

  const count = (command: EntityCommand, reply: CommandOutcome) =>
    Metric.update(Metric.withAttributes(commands, { type: command.entityType, outcome: reply._tag === "Accepted" ? reply.outcome : reply._tag }), 1)

  /**
   * Publishes `payload`, commands checked before (`mark` says what they are: domain/checked.ts), to
   * `subject` with a fresh reply subject, and returns the wait for its answer, decoded (an undecodable
   * answer is a bus error), for at most `timeoutMillis` (then CommandTimeout naming `commandId`).
   */
  const publish = <A>(subject: string, payload: Uint8Array, mark: string, decode: (text: string) => Option.Option<A>, commandId: string, timeoutMillis: number) =>
    Effect.gen(function*() {
      const replyTo = `${prefix}.${++sequence}`
      const waiter = Deferred.makeUnsafe<string>()
      pending.set(replyTo, waiter)
      const h = headers()
      h.set(REPLY_TO, replyTo)
      h.set(checkedHeader, mark)
      yield* tryNats("publish command", () => jetstream.publish(subject, payload, { headers: h })).pipe(
        Effect.onError(() => Effect.sync(() => pending.delete(replyTo)))
      )
      return Deferred.await(waiter).pipe(
        Effect.flatMap((text) =>
          Option.match(decode(text), {
            onNone: () => Effect.fail(new NatsError({ operation: "decode reply", cause: `undecodable answer on ${replyTo}` })),
            onSome: Effect.succeed
          })),
        Effect.timeoutOrElse({ duration: timeoutMillis, orElse: () => Effect.fail(new CommandTimeout({ commandId, timeoutMillis })) }),
        Effect.ensuring(Effect.sync(() => pending.delete(replyTo)))
      )
    })

  // What one message may carry: the server's limit, less room for headers.
  const maxPayload = Math.max(1_024, (connection.info?.max_payload ?? 1_048_576) - 4_096)
  /**
   * The answer to a command too large for any message: refused, never published. Published, NATS refused
   * it at every retry, and a translator's job sending it waited for good (stop 23's outside attack: an
   * Apply of 50,000 records, 8 MB). Settings let no HTTP command come near it (the start-up check).
   */
  const tooLarge = (command: EntityCommand, bytes: number): CommandReply => ({
    _tag: "Rejected",
    error: new CommandTooLarge({ entityType: command.entityType, entityId: command.entityId, bytes, maxBytes: maxPayload })
  })

  const timeoutOf = (sendOptions?: { readonly timeout?: Duration.Input }) => Duration.toMillis(sendOptions?.timeout ?? options.defaultTimeout ?? "10 seconds")

  const send = (command: EntityCommand, sendOptions?: { readonly timeout?: Duration.Input }) =>
    Effect.gen(function*() {
      yield* checkCommand(command)
      const timeout = timeoutOf(sendOptions)
      // Past this instant nobody waits for the answer: the entity answers Expired rather than apply it late.
      const deadline = command.deadline ?? (yield* Clock.currentTimeMillis) + timeout
      const subject = commandSubject(command.entityType, shardOf(command.entityId, shards), command.entityId)
      const payload = encoder.encode(JSON.stringify({ ...command, deadline }))
      const reply = payload.length > maxPayload ? tooLarge(command, payload.length) : yield* yield* publish(subject, payload, entityCommandMark, decodeReply, command.commandId, timeout)
      yield* count(command, reply)
      return reply
    }).pipe(Effect.mapError(toBusError))

  /** A batch sent; its replies decoded by `decodeReplies` (the full replies, or outcomes only). */
  const sendBatchAs = <R extends CommandOutcome>(
    batch: ReadonlyArray<EntityCommand>,
    decodeReplies: (text: string) => Option.Option<{ readonly replies: ReadonlyArray<R> }>,
    outcomes: boolean,
    sendOptions?: { readonly timeout?: Duration.Input }
  ) =>
    Effect.gen(function*() {
      yield* Effect.forEach(batch, checkCommand, { discard: true })
      const timeout = timeoutOf(sendOptions)
      const now = yield* Clock.currentTimeMillis
      const withDeadline = batch.map((command) => ({ ...command, deadline: command.deadline ?? now + timeout }))
      const byShard = new Map<number, Array<number>>()
      withDeadline.forEach((command, i) => {
        const shard = shardOf(command.entityId, shards)
        const indices = byShard.get(shard)
        if (indices === undefined) byShard.set(shard, [i])
        else indices.push(i)
      })
      const answers = new Array<R>(batch.length)
      // Publishes the commands `indices` of one shard as one message, halving it while too large;
      // the messages of a shard are published in order, their answers awaited together.
      const waits: Array<Effect.Effect<void, CommandTimeout | NatsError>> = []
      const publishChunk = (shard: number, indices: ReadonlyArray<number>): Effect.Effect<void, NatsError> =>
        Effect.gen(function*() {
          const commands = indices.map((i) => withDeadline[i]!)
          const payload = encoder.encode(JSON.stringify(outcomes ? { commands, outcomes } : { commands }))
          if (payload.length > maxPayload && indices.length > 1) {
            const half = Math.ceil(indices.length / 2)
            yield* publishChunk(shard, indices.slice(0, half))
            return yield* publishChunk(shard, indices.slice(half))
          }
          const first = withDeadline[indices[0]!]!
          if (payload.length > maxPayload) {
            const refused = tooLarge(first, payload.length)
            answers[indices[0]!] = refused as R
            return yield* count(first, refused)
          }
          // A batch the shard dead-lettered is answered with one Failed for all its commands.
          const decodeAnswers = (text: string): Option.Option<{ readonly replies: ReadonlyArray<R> }> =>
            Option.orElse(decodeReplies(text), () =>
              Option.map(Option.filter(decodeReply(text), (reply) => reply._tag === "Failed"), (reply) => ({ replies: indices.map(() => reply as R) })))
          const answer = yield* publish(batchSubject(shard, first.commandId), payload, commandBatchMark, decodeAnswers, first.commandId, timeout)
          waits.push(Effect.flatMap(answer, ({ replies }) =>
            replies.length !== indices.length
              ? Effect.fail(new NatsError({ operation: "decode reply", cause: `${replies.length} answers to ${indices.length} commands` }))
              : Effect.forEach(indices, (i, k) => Effect.andThen(Effect.sync(() => void (answers[i] = replies[k]!)), count(batch[i]!, replies[k]!)), { discard: true })))
        })
      yield* Effect.forEach(byShard, ([shard, indices]) => publishChunk(shard, indices), { discard: true })
      yield* Effect.all(waits, { concurrency: "unbounded", discard: true })
      return answers as ReadonlyArray<R>
    }).pipe(Effect.mapError(toBusError))

  const sendBatch = (batch: ReadonlyArray<EntityCommand>, sendOptions?: { readonly timeout?: Duration.Input }) =>
    sendBatchAs(batch, decodeBatchReply, false, sendOptions)
  const sendBatchOutcomes = (batch: ReadonlyArray<EntityCommand>, sendOptions?: { readonly timeout?: Duration.Input }) =>
    sendBatchAs(batch, decodeBatchOutcomes, true, sendOptions)

  /** Re-creates the shard's consumer from the start of the stream: every unacknowledged command again, in order. */
  const retake = (shard: number) =>
    freshConsumer({ jetstream, manager }, StreamNames.commands, {
      durable_name: consumerName(shard),
      filter_subject: shardCommands(shard),
      deliver_policy: DeliverPolicy.All,
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(redeliverAfter),
      max_ack_pending: maxAckPending,
      max_deliver: maxDeliver
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
      /**
       * Nothing here can ever handle it: kept in DEADLETTERS, its sender answered, removed from CMD. If
       * it cannot be written there now, it is left to be delivered again (and tried again) after the ack wait.
       */
      const deadLetter = (msg: JsMsg, reason: DeadLetterReason, detail: string) =>
        deadLetters.write(undeliverable(msg, StreamNames.commands, reason, detail)).pipe(
          Effect.andThen(answerDeadLetter(msg.headers, reason, detail)),
          Effect.andThen(Effect.sync(() => msg.ack())),
          Effect.catch((error) => Effect.logWarning("dead letter: could not write; the message stays on the bus", { subject: msg.subject, seq: msg.seq, error })),
          Effect.as(Option.none())
        )
      /** Why this shard's runtime could not handle `command`, if it could not. */
      const unfit = (command: EntityCommand): Option.Option<readonly [DeadLetterReason, string]> => {
        if (deciders.get(command.entityType) === undefined) return Option.some(["unknown-entity-type", `no entity type ${command.entityType}`])
        if (shardOf(command.entityId, shards) !== n) return Option.some(["wrong-shard", `${command.entityType} ${command.entityId} belongs to shard ${shardOf(command.entityId, shards)}, not ${n}`])
        return Option.none()
      }
      // Left unanswered (no nak: a redelivery now would land behind newer commands); the shard's next session takes it again in order.
      const leave = (msg: JsMsg) => () => Effect.sync(() => void held.delete(msg))
      const settle = (msg: JsMsg, answer: string) => {
        const replyTo = replyTarget(msg.headers)
        if (replyTo) connection.publish(replyTo, answer)
        msg.ack()
        held.delete(msg)
      }
      const toIncoming = (msg: JsMsg): Effect.Effect<Option.Option<IncomingCommand | IncomingBatch>> => {
        if (msg.subject.startsWith(batchPrefix)) {
          const batch = readBatch(msg.string(), msg.headers?.get(checkedHeader))
          if (Option.isNone(batch)) return deadLetter(msg, "undecodable", "not a batch of entity commands")
          const misfit = batch.value.commands.map(unfit).find(Option.isSome)
          if (misfit !== undefined) return deadLetter(msg, ...misfit.value)
          held.add(msg)
          // Each command answers its own slot; the message is answered and settled with the last one.
          const commands = batch.value.commands
          const outcomes = batch.value.outcomes === true
          const answers = new Array<CommandReply | CommandOutcome | undefined>(commands.length)
          let open = commands.length
          // A batch sent with `outcomes` is answered by replyOutcome (or reply, reduced to its outcome)
          const encodeAnswers = (replies: Array<CommandReply | CommandOutcome>) =>
            outcomes ? encodeBatchOutcomes({ replies: replies.map(outcomeOf) }) : encodeBatchReply({ replies: replies as Array<CommandReply> })
          if (open === 0) settle(msg, encodeAnswers([]))
          return Effect.succeedSome({
            batch: commands.map((command, i): IncomingCommand => {
              const answerWith = (reply: CommandReply | CommandOutcome) =>
                Effect.sync(() => {
                  if (answers[i] !== undefined) return
                  answers[i] = reply
                  if (--open === 0) settle(msg, encodeAnswers(answers as Array<CommandReply | CommandOutcome>))
                })
              return { command, reply: answerWith, ...(outcomes ? { replyOutcome: answerWith } : {}), retryLater: leave(msg) }
            })
          })
        }
        const command = readCommand(msg.string(), msg.headers?.get(checkedHeader))
        if (Option.isNone(command)) return deadLetter(msg, "undecodable", "not an entity command")
        const misfit = unfit(command.value)
        if (Option.isSome(misfit)) return deadLetter(msg, ...misfit.value)
        held.add(msg)
        return Effect.succeedSome({
          command: command.value,
          reply: (reply) => Effect.sync(() => settle(msg, encodeReply(reply))),
          retryLater: leave(msg)
        })
      }
      const messages = yield* consumeScoped("consume", () => consumer.consume({ max_messages: Math.min(maxAckPending, 256) }))
      return Stream.fromAsyncIterable(messages, (cause) => new CommandBusError({ operation: "consume", cause })).pipe(
        Stream.mapEffect(toIncoming),
        Stream.filter(Option.isSome),
        Stream.map((some) => some.value)
      )
    }).pipe(Effect.mapError((error) => new CommandBusError({ operation: error.operation, cause: error.cause })))

  return CommandBus.of({ send, sendBatch, sendBatchOutcomes, shard, shards })
})

export const layerJetStream = (options: CommandBusOptions = {}) => Layer.effect(CommandBus, bus(options))
