/**
 * The command bus: how a command reaches the single writer of its entity and how the answer comes
 * back. Declared here; implemented on JetStream in infra/nats/commandBus.ts (stream CMD, subjects
 * `cmd.<type>.<id>`, a work queue: a command is acknowledged only once its entity has answered).
 */
import { Context, Schema } from "effect"
import type { Duration, Effect, Stream } from "effect"
import { EntityCommand, EntityRejection } from "./entity.ts"
import { EntitySnapshot } from "./snapshot.ts"

export const CommandAccepted = Schema.TaggedStruct("Accepted", {
  outcome: Schema.Literals(["created", "updated", "unchanged", "deleted"]),
  entity: EntitySnapshot
})
export const CommandRejected = Schema.TaggedStruct("Rejected", { error: EntityRejection })
/** The entity could not answer (its store failed); whether the command took effect is unknown. */
export const CommandFailed = Schema.TaggedStruct("Failed", { message: Schema.String })
export const CommandReply = Schema.Union([CommandAccepted, CommandRejected, CommandFailed])
export type CommandReply = typeof CommandReply.Type

/** A command taken from the bus; `reply` answers the sender and settles the message. */
export interface IncomingCommand {
  readonly command: EntityCommand
  readonly reply: (reply: CommandReply) => Effect.Effect<void>
  /** Gives the command back unanswered, for the bus to deliver again after `delay` (here or elsewhere). */
  readonly retryLater: (delay: Duration.Input) => Effect.Effect<void>
}

/** No answer in time: the command may or may not have been applied (retry with the same Idempotency-Key). */
export class CommandTimeout extends Schema.TaggedError<CommandTimeout>()("CommandTimeout", {
  commandId: Schema.String,
  timeoutMillis: Schema.Number
}) {}

export class CommandBusError extends Schema.TaggedError<CommandBusError>()("CommandBusError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {}

export class CommandBus extends Context.Service<CommandBus, {
  /** Publishes durably, then waits for the entity's answer. */
  readonly send: (
    command: EntityCommand,
    options?: { readonly timeout?: Duration.Input }
  ) => Effect.Effect<CommandReply, CommandTimeout | CommandBusError>
  /** Commands in arrival order; pulled only as fast as this stream is consumed (backpressure). */
  readonly incoming: Stream.Stream<IncomingCommand, CommandBusError>
}>()("tributary/CommandBus") {}
