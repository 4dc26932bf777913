/**
 * EntityActor: the single writer of one entity (`<type>-<id>`), for any registered decider. It
 * activates from the entity's newest kept snapshot plus the events after it, then handles its
 * commands one at a time: decode the command with its type's schema, decide, append at the expected
 * revision, answer. After an append conflict or a store failure it re-reads the stream before deciding
 * again, because whether a failed append was written is unknown.
 *
 * It remembers what recent commands did (their ids are in the events' metadata: on activation it reads
 * the last RECENT_COMMANDS events backwards for them, so this survives passivation and activation from
 * a snapshot), and answers a command delivered twice — a retry with the same Idempotency-Key, a
 * JetStream redelivery — with the first outcome, applying it once; the entity as an older command left
 * it is folded from the nearest kept snapshot at or before that command's revision, never from 0.
 *
 * What it keeps between commands counts against the process's memory budget (EntityMemory, when
 * provided): evicted, it forgets, and reads the entity again at its next command. When its decider
 * declares `wakeAt`, it keeps the entity's reminder (Reminders, when provided) in line with the state.
 *
 * When a command puts the entity under a parent, or ends an entity that has children, it reads those
 * relatives from the store before deciding, and its append checks they are still as read and keeps
 * the parents' children indexes (relatives.ts, domain/children.ts): no child is created under a
 * deleted parent, no parent deleted under a live child, whichever processes run the two.
 */
import { Clock, Effect, Metric, Option, Schema } from "effect"
import type { Behavior } from "../runtime/Actor.ts"
import type { CommandReply, IncomingCommand } from "../../domain/CommandBus.ts"
import { Deciders } from "../../domain/DeciderRegistry.ts"
import { CommandIdReused, type EntityCommand, type EntityRejection, fingerprint, InvalidCommand, RevisionMismatch, stillAsChecked } from "../../domain/entity.ts"
import type { EntityKind } from "../../domain/EntityKind.ts"
import { EventMetadata } from "../../domain/envelope.ts"
import type { DecideContext } from "../../domain/Decider.ts"
import { EventStore, type EventData, type StreamAppend } from "../../domain/EventStore.ts"
import { KeptSnapshots } from "../../domain/KeptSnapshots.ts"
import { nextUuidv7 } from "../../domain/uuidv7.ts"
import { appendAlone, type BatchPart } from "./BatchCommit.ts"
import { EntityMemory, memoryBytes } from "./EntityMemory.ts"
import { type EntityReminder, entityReminder } from "./entityReminder.ts"
import { type Memory, type Remembered, newMemory } from "./memory.ts"
import { makeRelatives } from "./relatives.ts"

/**
 * The protocol: a command from the bus, answered exactly once (or handed back to the bus). A command
 * of a bus batch carries its part of the batch's commit: its events are appended with the batch's.
 */
export type EntityMessage = IncomingCommand & { readonly commit?: BatchPart | undefined }

/** Command ids remembered per entity: a redelivery or retry within this many later commands is recognised. */
export const RECENT_COMMANDS = 1_024
const PAGE = 1_000
const MAX_ATTEMPTS = 5

export interface EntityBehaviorOptions {
  /** the shard count (SHARDS), for the entity's reminder; default domain/shards.ts's */
  readonly shards?: number
  /** command ids remembered per entity; default RECENT_COMMANDS */
  readonly recentCommands?: number
}

const metadataOf = Schema.decodeUnknownOption(EventMetadata)

/** `<type>-<id>`: types never contain "-". */
const parseStream = (stream: string) => {
  const dash = stream.indexOf("-")
  return { type: stream.slice(0, dash), id: stream.slice(dash + 1) }
}

/** The behaviour of the entity whose stream is `stream` (`<type>-<id>`). */
export const entityBehavior = (stream: string, options: EntityBehaviorOptions = {}): Behavior<EntityMessage, never, EventStore> => () =>
  Effect.gen(function*() {
    const { type, id } = parseStream(stream)
    const kind = (yield* Deciders).get(type)
    if (kind === undefined) {
      return (message: EntityMessage) => message.reply({ _tag: "Failed", message: `unknown entity type ${type}` })
    }
    const runtime = yield* entityRuntime(stream, id, kind, options)
    return runtime.handle
  })

const entityRuntime = (stream: string, id: string, kind: EntityKind, options: EntityBehaviorOptions) =>
  Effect.gen(function*() {
    const store = yield* EventStore
    const snapshots = yield* Effect.serviceOption(KeptSnapshots)
    const budget = yield* Effect.serviceOption(EntityMemory)
    const reminder: EntityReminder = yield* entityReminder(kind, id, options.shards)
    const decider = kind.decider
    const type = kind.type
    const recentCommands = options.recentCommands ?? RECENT_COMMANDS
    const relatives = yield* makeRelatives(kind, id)
    const appendOne = appendAlone(store)

    // What the actor keeps between commands; undefined once the memory budget took it back.
    let memory: Memory | undefined
    let busy = false
    let evicted = false
    const forget = () => {
      memory = undefined
      evicted = false
    }
    const share = Option.map(budget, (b) => b.register(() => busy ? void (evicted = true) : forget()))
    yield* Effect.addFinalizer(() => Effect.sync(() => Option.map(share, (s) => s.release())))

    const account = () => {
      if (evicted) forget()
      if (Option.isNone(share)) return
      if (memory === undefined) share.value.release()
      else share.value.use(memory.bytes())
    }

    const rememberEvent = (target: Memory, event: { readonly type: string; readonly revision: number; readonly metadata: unknown }) => {
      const meta = metadataOf(event.metadata)
      if (Option.isNone(meta) || !kind.knowsEvent(event.type)) return
      target.remember(meta.value.commandId, {
        _tag: "Accepted",
        outcome: kind.outcomeOf(event.type, event.revision),
        revision: event.revision,
        fingerprint: meta.value.commandFingerprint
      })
    }

    /** Reads whatever the stream holds past the state `target` has; how many events that was. */
    const catchUp = (target: Memory) =>
      Effect.gen(function*() {
        let read = 0
        for (;;) {
          const page = yield* store.readStream(stream, { fromRevision: target.folded.revision + 1, maxCount: PAGE })
          for (const event of page) {
            target.setFolded(kind.apply(target.folded, event))
            rememberEvent(target, event)
          }
          read += page.length
          if (page.length < PAGE) return read
        }
      })

    /** The newest kept snapshot at or before `revision`, as a fold; none without the port, or when it fails. */
    const keptAtOrBefore = (revision?: number) =>
      Option.isNone(snapshots)
        ? Effect.succeed(Option.none())
        : snapshots.value.atOrBefore(type, id, revision).pipe(
          Effect.map(Option.flatMap(kind.fromKept)),
          Effect.catch((error) => Effect.as(Effect.logWarning("kept snapshots unavailable; folding from revision 0", { stream, error }), Option.none()))
        )

    /** Activation: the newest kept snapshot, the events after it, and the command ids of the last events. */
    const load = Effect.gen(function*() {
      const start = yield* keptAtOrBefore()
      const loaded = newMemory(Option.getOrElse(start, kind.initial), recentCommands)
      const from = loaded.folded.revision
      const tail = yield* catchUp(loaded)
      if (from >= 0 && tail < recentCommands) {
        // Bounded: the ids of commands applied before the snapshot, read backwards from it.
        const before = yield* store.readStream(stream, { direction: "backwards", fromRevision: from, maxCount: recentCommands - tail })
        const older = newMemory(loaded.folded, recentCommands)
        for (const event of before.toReversed()) rememberEvent(older, event)
        loaded.rememberOlder(older)
      }
      yield* reminder.sync(loaded.folded.state)
      return loaded
    })

    const loaded = Effect.suspend(() => memory === undefined ? Effect.tap(load, (m) => Effect.sync(() => void (memory = m))) : Effect.succeed(memory))

    memory = yield* load.pipe(Effect.orDie) // a store that cannot be read fails setup: supervision restarts it
    account()

    /** The entity as it was at `revision`: from the nearest kept snapshot at or before it. */
    const stateAt = (revision: number) =>
      Effect.gen(function*() {
        const from = Option.getOrElse(yield* keptAtOrBefore(revision), kind.initial)
        if (from.revision >= revision) return from
        const events = yield* store.readStream(stream, { fromRevision: from.revision + 1, maxCount: revision - from.revision })
        return kind.replay(events, from)
      })

    /** The answer to a remembered command: the entity as that command left it. */
    const answer = (mem: Memory, command: EntityCommand, what: Remembered) =>
      Effect.gen(function*() {
        if (what.fingerprint !== undefined && what.fingerprint !== fingerprint(command)) {
          return { _tag: "Rejected", error: new CommandIdReused({ commandId: command.commandId }) } satisfies CommandReply
        }
        if (what._tag === "Rejected") return { _tag: "Rejected", error: what.error } satisfies CommandReply
        const then = what.revision === mem.folded.revision ? mem.folded : yield* stateAt(what.revision)
        return { _tag: "Accepted", outcome: what.outcome, entity: kind.snapshot(id, then) } satisfies CommandReply
      })

    const reject = (mem: Memory, command: EntityCommand, error: EntityRejection, asked: string) => {
      mem.remember(command.commandId, { _tag: "Rejected", error, fingerprint: asked })
      return { _tag: "Rejected", error } satisfies CommandReply
    }

    const execute = (mem: Memory, command: EntityCommand, commit: BatchPart | undefined) =>
      Effect.gen(function*() {
        const asked = fingerprint(command)
        const decoded = kind.decodeCommand(command.action)
        if (decoded._tag === "Failure") return reject(mem, command, new InvalidCommand({ entityType: type, issues: decoded.failure }), asked)
        const context: DecideContext = { entityType: type, entityId: id }
        for (let attempt = 1; ; attempt++) {
          const { state, revision } = mem.folded
          if (command.expectedRevision !== undefined && command.expectedRevision !== revision) {
            const stale = decider.staleRevision?.(decoded.success, state, context) ??
              new RevisionMismatch({ entityType: type, entityId: id, expected: command.expectedRevision, actual: revision })
            return reject(mem, command, stale, asked)
          }
          if (!stillAsChecked(command, revision, () => decider.toJson(state))) {
            // not remembered: checked again, the request comes back under the same id
            return { _tag: "Rejected", error: new RevisionMismatch({ entityType: type, entityId: id, expected: command.checkedRevision!, actual: revision }) } satisfies CommandReply
          }
          const { appends: relativeAppends, decision } = yield* relatives.decide(decoded.success, state, context)
          if (decision._tag === "Failure") return reject(mem, command, decision.failure, asked)
          if (decision.success.length === 0) {
            mem.remember(command.commandId, { _tag: "Accepted", outcome: "unchanged", revision, fingerprint: asked })
            return { _tag: "Accepted", outcome: "unchanged", entity: kind.snapshot(id, mem.folded) } satisfies CommandReply
          }
          const metadata: EventMetadata = {
            entityType: type,
            entityId: id,
            commandId: command.commandId,
            correlationId: command.correlationId,
            causationId: command.causationId ?? command.commandId,
            commandFingerprint: asked
          }
          const events: Array<EventData> = []
          for (const event of decision.success) events.push({ eventId: yield* nextUuidv7, ...kind.toEventData(event), metadata })
          const appends: ReadonlyArray<StreamAppend> = [
            { stream, events, expectedRevision: revision === -1 ? "no_stream" : revision },
            ...yield* relativeAppends({ index: "children", commandId: command.commandId, correlationId: command.correlationId })
          ]
          // The first attempt of a batched command appends with its batch; a retry after a conflict, alone.
          const append = commit !== undefined && attempt === 1 ? commit.append : appendOne
          const appended = yield* append(appends).pipe(
            Effect.as(true),
            // our stream moved on, or a relative is no longer as read: read again, decide again
            Effect.catchTag("WrongExpectedRevisions", () => Effect.succeed(false)),
            Effect.catchTag("EventStoreError", (error) =>
              attempt < MAX_ATTEMPTS ? Effect.as(Effect.logWarning("append failed; re-reading", { stream, error }), false) : Effect.fail(error))
          )
          // Either way, read what the stream now holds: our own events (to answer with the recorded
          // revision and time), someone else's (to decide again), or ours despite a reported failure.
          yield* catchUp(mem)
          yield* reminder.sync(mem.folded.state)
          const done = mem.recall(command.commandId)
          if (done !== undefined) return yield* answer(mem, command, done)
          if (appended) return yield* Effect.die(new Error(`appended to ${stream} but the events were not read back`))
          if (attempt >= MAX_ATTEMPTS) return { _tag: "Failed", message: `${stream}: gave up after ${attempt} conflicting appends` } satisfies CommandReply
        }
      })

    const handle = (message: EntityMessage) =>
      Effect.suspend(() => {
        busy = true
        return Effect.flatMap(Effect.zip(loaded, Clock.currentTimeMillis), ([mem, now]): Effect.Effect<CommandReply, unknown> => {
          const known = mem.recall(message.command.commandId)
          if (known !== undefined) return answer(mem, message.command, known)
          // Its sender gave up waiting: applying it now could land it after newer commands it went on to send.
          const deadline = message.command.deadline
          if (deadline !== undefined && now > deadline) return Effect.succeed({ _tag: "Expired", deadline } satisfies CommandReply)
          return execute(mem, message.command, message.commit)
        })
      }).pipe(
        // A batched command that appended nothing (answered from memory, expired, rejected, failed)
        // tells its batch, which commits once every part has appended or said so.
        Effect.ensuring(message.commit?.skip ?? Effect.void),
        // Every message gets an answer, whatever went wrong (a store outage, an event this code does
        // not know): the sender learns now instead of at its timeout. What the actor knew may be
        // half-updated: it forgets it and reads the entity again at the next command.
        Effect.catchCause((cause) =>
          Effect.as(
            Effect.andThen(Effect.sync(forget), Effect.logError("entity command failed", { stream, cause })),
            { _tag: "Failed", message: `${stream}: the command failed; retry` } satisfies CommandReply
          )),
        Effect.tap(() =>
          Effect.sync(() => {
            busy = false
            account()
          })),
        Effect.tap(() => Option.isNone(budget) ? Effect.void : Effect.flatMap(budget.value.bytes, (bytes) => Metric.update(memoryBytes, bytes))),
        Effect.flatMap(message.reply)
      )

    return { handle }
  })
