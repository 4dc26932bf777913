/**
 * EntityActor: the single writer of one entity (`<type>-<id>`). It loads the entity's history once,
 * then handles its commands one at a time: decide, append at the expected revision, answer. After an
 * append conflict or a store failure it re-reads the stream before deciding again, because whether a
 * failed append was written is unknown. It remembers what recent commands did (their ids are in the
 * events' metadata, so this survives passivation), and answers a command delivered twice — a retry
 * with the same Idempotency-Key, a JetStream redelivery — with the first outcome, applying it once.
 */
import { Effect, Option, Result, Schema } from "effect"
import type { Behavior } from "../runtime/Actor.ts"
import type { IncomingCommand } from "../../domain/CommandBus.ts"
import {
  CommandIdReused,
  decide,
  evolveRecorded,
  fingerprint,
  initialState,
  replay,
  toEventData,
  type EntityCommand,
  type EntityRejection,
  type EntityState
} from "../../domain/entity.ts"
import { entityTypes } from "../../domain/entityTypes.ts"
import { EventMetadata } from "../../domain/envelope.ts"
import { EventStore, type EventData, type RecordedEvent } from "../../domain/EventStore.ts"
import { toSnapshot } from "../../domain/snapshot.ts"
import { nextUuidv7 } from "../../domain/uuidv7.ts"

/** The protocol: a command from the bus, answered exactly once (or handed back to the bus). */
export type EntityMessage = IncomingCommand

/** Command ids remembered per entity: a redelivery or retry within this many later commands is recognised. */
const RECENT_COMMANDS = 1_024
const PAGE = 1_000
const MAX_ATTEMPTS = 5

type Outcome = "created" | "updated" | "deleted" | "unchanged"
/** What a command did: small, so many can be remembered; the state is re-read when needed. */
type Remembered = (
  | { readonly _tag: "Accepted"; readonly outcome: Outcome; readonly revision: number }
  | { readonly _tag: "Rejected"; readonly error: EntityRejection }
) & { readonly fingerprint: string | undefined }

const outcomeOf: Record<string, Outcome> = { EntityCreated: "created", EntityUpdated: "updated", EntityDeleted: "deleted" }
const metadataOf = Schema.decodeUnknownOption(EventMetadata)

/** The behaviour of the entity whose stream is `stream` (`<type>-<id>`). */
export const entityBehavior = (stream: string): Behavior<EntityMessage, never, EventStore> => () =>
  Effect.gen(function*() {
    const store = yield* EventStore
    let state: EntityState = initialState()
    let position = 0
    const recent = new Map<string, Remembered>()
    const remember = (commandId: string, what: Remembered) => {
      recent.delete(commandId)
      recent.set(commandId, what)
      if (recent.size > RECENT_COMMANDS) recent.delete(recent.keys().next().value!)
    }

    const apply = (event: RecordedEvent) => {
      state = evolveRecorded(state, event)
      position = event.position
      const meta = metadataOf(event.metadata)
      const outcome = outcomeOf[event.type]
      if (Option.isSome(meta) && outcome !== undefined) {
        remember(meta.value.commandId, { _tag: "Accepted", outcome, revision: event.revision, fingerprint: meta.value.commandFingerprint })
      }
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

    /** The answer to a remembered command: the entity as that command left it. */
    const answer = (command: EntityCommand, what: Remembered) =>
      Effect.gen(function*() {
        if (what.fingerprint !== undefined && what.fingerprint !== fingerprint(command)) {
          return { _tag: "Rejected", error: new CommandIdReused({ commandId: command.commandId }) } as const
        }
        if (what._tag === "Rejected") return { _tag: "Rejected", error: what.error } as const
        if (what.revision === state.revision) {
          return { _tag: "Accepted", outcome: what.outcome, entity: toSnapshot(command.entityType, command.entityId, state, position) } as const
        }
        // An older command: fold the stream up to its revision.
        const events = yield* store.readStream(stream, { maxCount: what.revision + 1 })
        const then = replay(events)
        const at = events[events.length - 1]?.position ?? 0
        return { _tag: "Accepted", outcome: what.outcome, entity: toSnapshot(command.entityType, command.entityId, then, at) } as const
      })

    const execute = (command: EntityCommand) => Effect.gen(function*() {
      const asked = fingerprint(command)
      const definition = entityTypes.get(command.entityType)
      if (definition === undefined) return { _tag: "Failed", message: `unknown entity type ${command.entityType}` } as const
      for (let attempt = 1; ; attempt++) {
        const decision = decide(definition, command, state)
        if (Result.isFailure(decision)) {
          remember(command.commandId, { _tag: "Rejected", error: decision.failure, fingerprint: asked })
          return { _tag: "Rejected", error: decision.failure } as const
        }
        if (decision.success.length === 0) {
          remember(command.commandId, { _tag: "Accepted", outcome: "unchanged", revision: state.revision, fingerprint: asked })
          return { _tag: "Accepted", outcome: "unchanged", entity: toSnapshot(command.entityType, command.entityId, state, position) } as const
        }
        const metadata: EventMetadata = {
          entityType: command.entityType,
          entityId: command.entityId,
          commandId: command.commandId,
          correlationId: command.correlationId,
          causationId: command.causationId ?? command.commandId,
          commandFingerprint: asked
        }
        const events: Array<EventData> = []
        for (const event of decision.success) events.push({ eventId: yield* nextUuidv7, ...toEventData(event), metadata })
        const appended = yield* store.appendToStream(stream, events, state.revision === -1 ? "no_stream" : state.revision).pipe(
          Effect.as(true),
          Effect.catchTag("WrongExpectedRevision", () => Effect.succeed(false)),
          Effect.catchTag("EventStoreError", (error) =>
            attempt < MAX_ATTEMPTS ? Effect.as(Effect.logWarning("append failed; re-reading", { stream, error }), false) : Effect.fail(error))
        )
        // Either way, read what the stream now holds: our own events (to answer with the recorded
        // revision and time), someone else's (to decide again), or ours despite a reported failure.
        yield* catchUp
        const done = recent.get(command.commandId)
        if (done !== undefined) return yield* answer(command, done)
        if (appended) return yield* Effect.die(new Error(`appended to ${stream} but the events were not read back`))
        if (attempt >= MAX_ATTEMPTS) return { _tag: "Failed", message: `${stream}: gave up after ${attempt} conflicting appends` } as const
      }
    })

    return (message: EntityMessage) =>
      Effect.suspend(() => {
        const known = recent.get(message.command.commandId)
        return known !== undefined ? answer(message.command, known) : execute(message.command)
      }).pipe(
        // Every message gets an answer, whatever went wrong (a store outage, an event this code does
        // not know): the sender learns now instead of at its timeout.
        Effect.catchCause((cause) =>
          Effect.as(Effect.logError("entity command failed", { stream, cause }), { _tag: "Failed", message: `${stream}: the command failed; retry` } as const)),
        Effect.flatMap(message.reply)
      )
  })
