/**
 * EntityActor: the single writer of one entity (`<type>-<id>`). It loads the entity's history once,
 * then handles its commands one at a time: decide, append at the expected revision, answer. After an
 * append conflict or a store failure it re-reads the stream before deciding again, because whether a
 * failed append was written is unknown. It remembers the answers to recent commands, so a command
 * delivered twice (a retry with the same Idempotency-Key, a JetStream redelivery) is answered again
 * without being applied twice.
 */
import { Clock, Effect, Result, Schedule, Stream } from "effect"
import type { Duration } from "effect"
import * as ActorRegistry from "./ActorRegistry.ts"
import type { Behavior } from "./Actor.ts"
import { CommandBus, CommandBusError, type CommandReply } from "../domain/CommandBus.ts"
import { decide, evolveRecorded, initialState, toEventData, type EntityCommand, type EntityState } from "../domain/entity.ts"
import { entityTypes } from "../domain/entityTypes.ts"
import { streamName, type EventMetadata } from "../domain/envelope.ts"
import { EventStore, type EventData, type RecordedEvent } from "../domain/EventStore.ts"
import { toSnapshot } from "../domain/snapshot.ts"
import { uuidv7 } from "../domain/uuidv7.ts"

/** The protocol: a command and where its answer goes. Every message is answered exactly once. */
export interface EntityMessage {
  readonly command: EntityCommand
  readonly reply: (reply: CommandReply) => Effect.Effect<void>
}

const RECENT_COMMANDS = 256
const PAGE = 1_000
const MAX_ATTEMPTS = 5

const outcomeOf = { EntityCreated: "created", EntityUpdated: "updated", EntityDeleted: "deleted" } as const

const newEventId = Effect.map(Clock.currentTimeMillis, (now) => uuidv7(now, crypto.getRandomValues(new Uint8Array(10))))

/** The behaviour of the entity whose stream is `stream` (`<type>-<id>`). */
export const entityBehavior = (stream: string): Behavior<EntityMessage, never, EventStore> => () =>
  Effect.gen(function*() {
    const store = yield* EventStore
    let state: EntityState = initialState()
    let position = 0
    const recent = new Map<string, CommandReply>()

    const apply = (event: RecordedEvent) => {
      state = evolveRecorded(state, event)
      position = event.position
      const meta = event.metadata as EventMetadata
      const outcome = outcomeOf[event.type as keyof typeof outcomeOf]
      if (outcome === undefined) return
      recent.delete(meta.commandId)
      recent.set(meta.commandId, { _tag: "Accepted", outcome, entity: toSnapshot(meta.entityType, meta.entityId, state, position) })
      if (recent.size > RECENT_COMMANDS) recent.delete(recent.keys().next().value!)
    }

    /** Reads whatever the stream holds past the state we have. */
    const catchUp = Effect.gen(function*() {
      for (;;) {
        const page = yield* store.readStream(stream, { fromRevision: state.revision + 1, maxCount: PAGE })
        page.forEach(apply)
        if (page.length < PAGE) return
      }
    })

    yield* catchUp.pipe(Effect.orDie) // a store that cannot be read fails setup: supervision restarts it

    const execute = (command: EntityCommand) => Effect.gen(function*() {
      const definition = entityTypes.get(command.entityType)
      if (definition === undefined) return { _tag: "Failed", message: `unknown entity type ${command.entityType}` } as const
      for (let attempt = 1; ; attempt++) {
        const decision = decide(definition, command, state)
        if (Result.isFailure(decision)) return { _tag: "Rejected", error: decision.failure } as const
        if (decision.success.length === 0) {
          return { _tag: "Accepted", outcome: "unchanged", entity: toSnapshot(command.entityType, command.entityId, state, position) } as const
        }
        const metadata: EventMetadata = {
          entityType: command.entityType,
          entityId: command.entityId,
          commandId: command.commandId,
          correlationId: command.correlationId,
          causationId: command.causationId ?? command.commandId
        }
        const events: Array<EventData> = []
        for (const event of decision.success) events.push({ eventId: yield* newEventId, ...toEventData(event), metadata })
        const appended = yield* store.appendToStream(stream, events, state.revision === -1 ? "no_stream" : state.revision).pipe(
          Effect.as(true),
          Effect.catchTag("WrongExpectedRevision", () => Effect.succeed(false)),
          Effect.catchTag("EventStoreError", (error) =>
            attempt < MAX_ATTEMPTS ? Effect.as(Effect.logWarning("append failed; re-reading", { stream, error }), false) : Effect.fail(error))
        )
        // Either way, read what the stream now holds: our own events (to answer with the recorded
        // revision and time), someone else's (to decide again), or ours despite a reported failure.
        yield* catchUp
        const answered = recent.get(command.commandId)
        if (answered !== undefined) return answered
        if (appended) return yield* Effect.die(new Error(`appended to ${stream} but the events were not read back`))
        if (attempt >= MAX_ATTEMPTS) return { _tag: "Failed", message: `${stream}: gave up after ${attempt} conflicting appends` } as const
      }
    }).pipe(
      Effect.catch((error) => Effect.succeed<CommandReply>({ _tag: "Failed", message: `${error._tag}: ${String(error.cause)}` }))
    )

    return (message: EntityMessage) =>
      Effect.suspend(() => {
        const known = recent.get(message.command.commandId)
        return known !== undefined ? message.reply(known) : Effect.flatMap(execute(message.command), message.reply)
      })
  })

/**
 * Starts the entity actors and feeds them the commands from the bus in arrival order. A command's
 * message is settled when its entity answers; a full mailbox holds the bus back (backpressure).
 */
export const runEntityActors = (options: {
  readonly mailboxCapacity?: number
  readonly idleTimeout?: Duration.Input
}) =>
  Effect.gen(function*() {
    const bus = yield* CommandBus
    const registry = yield* ActorRegistry.make({
      kind: "entity",
      behavior: entityBehavior,
      mailboxCapacity: options.mailboxCapacity ?? 64,
      idleTimeout: options.idleTimeout ?? "5 minutes"
    })
    yield* Effect.addFinalizer(() => registry.shutdown)
    return yield* bus.incoming.pipe(
      Stream.runForEach((incoming) =>
        registry.tell(streamName(incoming.command.entityType, incoming.command.entityId), incoming).pipe(
          Effect.catchTag("ActorStopped", () => incoming.reply({ _tag: "Failed", message: "shutting down" }))
        )
      ),
      Effect.andThen(Effect.fail(new CommandBusError({ operation: "consume", cause: "the command stream ended" }))),
      // The bus went away (NATS restarting, consumer deleted): pull again after a backoff. Commands
      // taken but not answered are redelivered by JetStream; the actors keep their state meanwhile.
      Effect.tapError((error) => Effect.logWarning("command bus failed; consuming again", error)),
      Effect.retry(Schedule.min([Schedule.exponential("100 millis"), Schedule.spaced("5 seconds")]))
    )
  })
