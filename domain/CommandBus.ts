/**
 * The command bus: how a command reaches the single writer of its entity and how the answer comes
 * back. Declared here; implemented on JetStream in infra/nats/commandBus.ts (stream CMD, subjects
 * `cmd.<type>.<shard>.<id>`, a work queue: a command is acknowledged only once its entity has answered).
 */
import { Context, Schema } from "effect"
import type { Duration, Effect, Scope, Stream } from "effect"
import { EntityCommand, EntityRejection } from "./entity.ts"
import { EntitySnapshot } from "./snapshot.ts"

export const CommandAccepted = Schema.TaggedStruct("Accepted", {
  outcome: Schema.Literals(["created", "updated", "unchanged", "deleted"]),
  entity: EntitySnapshot
})
export const CommandRejected = Schema.TaggedStruct("Rejected", { error: EntityRejection })
/** The entity could not answer (its store failed); whether the command took effect is unknown. */
export const CommandFailed = Schema.TaggedStruct("Failed", { message: Schema.String })
/**
 * The command reached its entity after its deadline (its sender had given up waiting): it was not
 * applied, so an old command cannot land after newer ones its sender went on to send.
 */
export const CommandExpired = Schema.TaggedStruct("Expired", { deadline: Schema.Number })
export const CommandReply = Schema.Union([CommandAccepted, CommandRejected, CommandFailed, CommandExpired])
export type CommandReply = typeof CommandReply.Type

/** A command taken from the bus; `reply` answers the sender and settles the message. */
export interface IncomingCommand {
  readonly command: EntityCommand
  readonly reply: (reply: CommandReply) => Effect.Effect<void>
  /**
   * Present when the sender reads the outcome alone (a batch sent with `outcomes`): answers it without the
   * entity, which then need not be built (a profile of 60,000 segments took 0.3 s to show at each command).
   */
  readonly replyOutcome?: (outcome: CommandOutcome) => Effect.Effect<void>
  /**
   * Gives the command back unanswered. It is delivered again, in stream order, only to the next
   * holder of its shard: never reordered behind newer commands of the same entity.
   */
  readonly retryLater: (delay: Duration.Input) => Effect.Effect<void>
}

/**
 * The commands of one bus message (CommandBus.sendBatch), all of one shard, in the sender's order;
 * each is answered on its own. Their entities' events are committed together where they can be.
 */
export interface IncomingBatch {
  readonly batch: ReadonlyArray<IncomingCommand>
}

/**
 * What a sender that does not read the entity back hears of a command: a reply whose acceptance
 * carries its outcome without the entity (a translator's batch of 10,000 profiles: each snapshot was
 * encoded by the shard, sent, decoded and dropped, ~14 µs and ~800 bytes a profile).
 */
export const CommandOutcome = Schema.Union([
  Schema.TaggedStruct("Accepted", { outcome: CommandAccepted.fields.outcome }),
  CommandRejected,
  CommandFailed,
  CommandExpired
])
export type CommandOutcome = typeof CommandOutcome.Type

/** A reply without its entity. */
export const outcomeOf = (reply: CommandReply | CommandOutcome): CommandOutcome => reply._tag === "Accepted" ? { _tag: "Accepted", outcome: reply.outcome } : reply

/** The wire form of a batch message: its commands, in order; `outcomes`: answer CommandOutcomes. */
export const CommandBatch = Schema.Struct({ commands: Schema.Array(EntityCommand), outcomes: Schema.optionalKey(Schema.Boolean) })
/** The marks of CMD messages whose commands their sender checked (domain/checked.ts): a change of what EntityCommand accepts bumps them. */
export const entityCommandMark = "EntityCommand/1"
export const commandBatchMark = "CommandBatch/1"
/** The wire form of a batch's answer: one reply per command, in the batch's order. */
export const CommandBatchReply = Schema.Struct({ replies: Schema.Array(CommandReply) })
/** The answer to a batch sent with `outcomes`. */
export const CommandBatchOutcomes = Schema.Struct({ replies: Schema.Array(CommandOutcome) })

/** No answer in time: the command may or may not have been applied (retry with the same Idempotency-Key). */
export class CommandTimeout extends Schema.TaggedError<CommandTimeout>()("CommandTimeout", {
  commandId: Schema.String,
  timeoutMillis: Schema.Number
}) {}

/**
 * The `operation` of a CommandBusError for a command that is not a valid EntityCommand (an id over 1,024
 * characters, say): its sender's bug, refused again however often it is sent.
 */
export const invalidCommand = "encode command"

export class CommandBusError extends Schema.TaggedError<CommandBusError>()("CommandBusError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {}

export class CommandBus extends Context.Service<CommandBus, {
  /**
   * Publishes durably to the entity's shard, then waits for the entity's answer. The command carries
   * a deadline (now + timeout, unless it has one): past it, the entity answers Expired.
   */
  readonly send: (
    command: EntityCommand,
    options?: { readonly timeout?: Duration.Input }
  ) => Effect.Effect<CommandReply, CommandTimeout | CommandBusError>
  /**
   * Sends many commands as few bus messages: one per shard (split further only where a message would
   * exceed the server's payload limit), then waits for every answer; the replies come in the order of
   * `commands`. The commands of one message reach their entities in bus order like single commands,
   * and the shard commits their events in one multi-stream append.
   */
  readonly sendBatch: (
    commands: ReadonlyArray<EntityCommand>,
    options?: { readonly timeout?: Duration.Input }
  ) => Effect.Effect<ReadonlyArray<CommandReply>, CommandTimeout | CommandBusError>
  /** As sendBatch, answered with outcomes only: for a sender that reads no entity back. */
  readonly sendBatchOutcomes: (
    commands: ReadonlyArray<EntityCommand>,
    options?: { readonly timeout?: Duration.Input }
  ) => Effect.Effect<ReadonlyArray<CommandOutcome>, CommandTimeout | CommandBusError>
  /**
   * Takes over the commands of `shard` (for its lease holder only), for the life of the Scope: every
   * command of the shard not answered yet is delivered again by the returned stream, in stream order,
   * then new ones as they arrive; pulled only as fast as the stream is consumed (backpressure). While
   * it is consumed, nothing is redelivered out of order: a command is given back only to the next
   * holder of the shard.
   */
  readonly shard: (shard: number) => Effect.Effect<Stream.Stream<IncomingCommand | IncomingBatch, CommandBusError>, CommandBusError, Scope.Scope>
  /** The number of shards commands are spread over (`SHARDS`). */
  readonly shards: number
}>()("tributary/CommandBus") {}
