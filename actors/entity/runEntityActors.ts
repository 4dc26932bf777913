/**
 * Runs the entity actors of this process: takes commands from the command bus and hands each to the
 * actor of its entity.
 */
import { Effect, Schedule, Stream } from "effect"
import type { Duration } from "effect"
import * as ActorRegistry from "../runtime/ActorRegistry.ts"
import * as Dispatcher from "../runtime/Dispatcher.ts"
import { CommandBus, CommandBusError } from "../../domain/CommandBus.ts"
import { streamName } from "../../domain/envelope.ts"
import { entityBehavior } from "./EntityActor.ts"

/**
 * Starts the entity actors and feeds them the commands from the bus: each entity gets its commands in
 * bus order, and one entity's full mailbox holds up only that entity's commands (Dispatcher). How
 * many commands wait is bounded by the bus's in-flight limit, past which it stops delivering
 * (backpressure). A command's message is settled when its entity answers. On interruption the bus
 * stops first, waiting commands go back to it, then every mailbox drains.
 */
export const runEntityActors = (options: {
  readonly mailboxCapacity?: number
  readonly idleTimeout?: Duration.Input
  readonly maxActors?: number
}) =>
  Effect.gen(function*() {
    const bus = yield* CommandBus
    const registry = yield* ActorRegistry.make({
      kind: "entity",
      behavior: entityBehavior,
      mailboxCapacity: options.mailboxCapacity ?? 64,
      idleTimeout: options.idleTimeout ?? "5 minutes",
      maxActors: options.maxActors
    })
    const dispatcher = yield* Dispatcher.make(registry, { onStopped: (incoming) => incoming.retryLater("1 second") })
    return yield* bus.incoming.pipe(
      Stream.runForEach((incoming) => dispatcher.dispatch(streamName(incoming.command.entityType, incoming.command.entityId), incoming)),
      Effect.andThen(Effect.fail(new CommandBusError({ operation: "consume", cause: "the command stream ended" }))),
      // The bus went away (NATS restarting, consumer deleted): pull again after a backoff. Commands
      // taken but not answered are redelivered by JetStream; the actors keep their state meanwhile.
      Effect.tapError((error) => Effect.logWarning("command bus failed; consuming again", error)),
      Effect.retry(Schedule.min([Schedule.exponential("100 millis"), Schedule.spaced("5 seconds")]))
    )
  }).pipe(Effect.scoped)
