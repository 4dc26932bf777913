/**
 * The entity shard runner: for every shard this process owns (actors/runtime/Shards.ts), takes the
 * shard's commands from the command bus and hands each to the actor of its entity.
 *
 * Order: taking a shard re-creates its consumer, so every command not answered yet — those a killed
 * owner had pulled included — arrives again in stream order before any newer one; each entity's
 * commands then reach its actor in that order (Dispatcher), different entities running in parallel.
 * Nothing is given back to the bus to be redelivered later (that would reorder): a command this
 * process cannot hand to its actor is handed back unanswered (`retryLater`) and stays on the bus
 * until the shard's next session, which takes them all again in order. A command whose actor failed
 * on it is answered Failed.
 */
import { Clock, Deferred, Effect, Schedule, Schema, Stream } from "effect"
import type { Duration } from "effect"
import { type ActorFailed, ActorStopped } from "../runtime/Actor.ts"
import * as ActorRegistry from "../runtime/ActorRegistry.ts"
import * as Dispatcher from "../runtime/Dispatcher.ts"
import { runShards } from "../runtime/Shards.ts"
import { CommandBus, CommandBusError, type IncomingBatch, type IncomingCommand } from "../../domain/CommandBus.ts"
import { streamName } from "../../domain/envelope.ts"
import { Deciders } from "../../domain/DeciderRegistry.ts"
import * as BatchCommit from "./BatchCommit.ts"
import { entityBehavior, type EntityMessage } from "./EntityActor.ts"
import * as ShardBatchApplier from "./ShardBatchApplier.ts"

export interface EntityActorsOptions {
  readonly mailboxCapacity?: number
  readonly idleTimeout?: Duration.Input
  /** live entity actors of the whole process, shared equally by the shards */
  readonly maxActors?: number
  /**
   * how long a bus batch waits for its slowest entity before committing what has arrived (the rest
   * append alone); default 500 ms
   */
  readonly batchWindow?: Duration.Input
  /** entities of batch-applied types (Decider.applies) whose folds a shard keeps cached; default 100,000 */
  readonly maxCachedBatchEntities?: number
}

/** An entity actor gave up: its mailbox was handed back, so the session restarts and takes its commands again, in order. */
class ShardRestart extends Schema.TaggedError<ShardRestart>()("ShardRestart", { shard: Schema.Number, cause: Schema.Defect() }) {}

/**
 * A command its actor could not handle: failed on it (answered Failed), or stopped or gave up before it.
 * Then it is handed back to the bus (the shard's next session takes it again, in order), unless its
 * sender has stopped waiting: it is answered Expired, not applied (as its entity would), so a command
 * whose entity keeps failing leaves the bus at its deadline instead of coming back with every session.
 */
const undelivered = (message: EntityMessage, error: ActorFailed | ActorStopped) =>
  Effect.gen(function*() {
    const { command } = message
    if (error._tag === "ActorFailed") return yield* message.reply({ _tag: "Failed", message: `${command.entityType} ${command.entityId}: the entity actor failed on this command` })
    const deadline = command.deadline
    if (deadline !== undefined && (yield* Clock.currentTimeMillis) > deadline) return yield* message.reply({ _tag: "Expired", deadline })
    return yield* message.retryLater(0)
  }).pipe(Effect.ensuring(message.commit?.skip ?? Effect.void))

/**
 * One session of a shard: its own actors, fed from the shard's commands until the bus fails or an
 * actor gives up. Interrupted (shard handed back, process stopping), it stops pulling first, then
 * every actor finishes what its mailbox holds; commands still waiting for mailbox space stay on the bus.
 */
const session = (shard: number, options: EntityActorsOptions, started: Effect.Effect<void>) =>
  Effect.gen(function*() {
    const bus = yield* CommandBus
    const restart = yield* Deferred.make<never, ShardRestart>()
    const registry = yield* ActorRegistry.make({
      kind: "entity",
      behavior: (stream) => entityBehavior(stream, { shards: bus.shards }),
      mailboxCapacity: options.mailboxCapacity ?? 64,
      idleTimeout: options.idleTimeout ?? "5 minutes",
      maxActors: options.maxActors === undefined ? undefined : Math.max(1, Math.ceil(options.maxActors / bus.shards)),
      onEscalate: (escalation) => Deferred.fail(restart, new ShardRestart({ shard, cause: escalation })).pipe(Effect.asVoid),
      undelivered
    })
    const dispatcher = yield* Dispatcher.make<EntityMessage>(registry, { onStopped: (message) => undelivered(message, new ActorStopped({ actor: entityOf(message) })) })
    const entityOf = (incoming: IncomingCommand) => streamName(incoming.command.entityType, incoming.command.entityId)
    // A batch's commands go to their actors like single ones, each with its part of one commit. An
    // entity named twice gets a part for its first command only: its second comes after the first in
    // its mailbox, so it could not join the same commit; it appends alone.
    const dispatchBatch = ({ batch }: IncomingBatch) =>
      Effect.gen(function*() {
        const entities = new Set(batch.map(entityOf))
        const parts = yield* BatchCommit.make(entities.size, options.batchWindow ?? "500 millis")
        let next = 0
        for (const incoming of batch) {
          const entity = entityOf(incoming)
          const commit = entities.delete(entity) ? parts[next++] : undefined
          yield* dispatcher.dispatch(entity, commit === undefined ? incoming : { ...incoming, commit })
        }
      })
    // Types applied in shard batches (Decider.applies) go, every command of them, to the shard's one
    // applier, awaited in bus order; the others to their entity actors.
    const deciders = yield* Deciders
    const batched = (incoming: IncomingCommand) => deciders.get(incoming.command.entityType)?.decider.applies === "batch"
    const applier = deciders.kinds.some((kind) => kind.decider.applies === "batch")
      ? yield* ShardBatchApplier.make({ shards: bus.shards, ...(options.maxCachedBatchEntities === undefined ? {} : { maxCached: options.maxCachedBatchEntities }) })
      : undefined
    const route = (incoming: IncomingCommand | IncomingBatch) => {
      if (applier === undefined) return "batch" in incoming ? dispatchBatch(incoming) : dispatcher.dispatch(entityOf(incoming), incoming)
      if (!("batch" in incoming)) return batched(incoming) ? applier.apply([incoming]) : dispatcher.dispatch(entityOf(incoming), incoming)
      const mine = incoming.batch.filter(batched)
      const others = mine.length === 0 ? incoming.batch : incoming.batch.filter((c) => !batched(c))
      return Effect.andThen(
        mine.length === 0 ? Effect.void : applier.apply(mine),
        others.length === 0 ? Effect.void : dispatchBatch({ batch: others })
      )
    }
    const commands = yield* bus.shard(shard)
    yield* started
    const consume = commands.pipe(
      Stream.runForEach(route),
      Effect.andThen(Effect.fail(new CommandBusError({ operation: "consume", cause: "the command stream ended" })))
    )
    return yield* Effect.raceFirst(consume, Deferred.await(restart))
  }).pipe(Effect.scoped)

/** Runs a shard's sessions while it is owned; after a failure (NATS restarting, an actor gone) a new session re-takes the shard. */
const runShard = (shard: number, options: EntityActorsOptions, started: Effect.Effect<void>) =>
  session(shard, options, started).pipe(
    Effect.tapError((error) => Effect.logWarning("entity shard failed; taking it again", { shard, error })),
    Effect.retry(Schedule.min([Schedule.exponential("100 millis"), Schedule.spaced("5 seconds")])),
    Effect.andThen(Effect.never)
  )

/**
 * Runs the entity actors of the shards this process owns, for the life of the Scope: returns once it
 * has taken the free shards it should own now (with those shards, as they change); when the Scope
 * closes, it hands every shard back.
 */
export const runEntityActors = (options: EntityActorsOptions) =>
  Effect.gen(function*() {
    const bus = yield* CommandBus
    return yield* runShards({ shards: bus.shards, run: (shard, started) => runShard(shard, options, started) })
  })
