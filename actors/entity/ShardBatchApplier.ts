/**
 * The batch path of a shard (DESIGN.md: the "high" volume class, "a shard applies a batch in one
 * multi-stream append"): for entity types whose decider says `applies: "batch"` (user profiles, tens
 * of millions of them), one applier per shard session replaces the actor per entity. The session
 * hands it every command of such a type — batches and single commands alike (a reminder's Wake) —
 * and it handles them serially in bus order, so each entity still has one writer and its order.
 *
 * For a batch: take each entity's fold from a bounded LRU cache of folds (counted against
 * EntityMemory), or take it to be new without reading (new profiles are the common case; the append
 * checks it, and a conflict has it read), decode, decide in order on the working state, then append
 * ALL streams in ONE `appendToStreams` at their expected revisions, read back what was recorded (one
 * read of the global order), set or cancel the reminders its deciders' `wakeAt` asks for
 * (concurrently: the reminder store group-commits them), and answer each command.
 *
 * Like EntityActor, it remembers what recent commands did (their ids are in the events' metadata,
 * read back on load): a redelivered bus message is answered the same and applied once. On a conflict
 * (another writer moved a stream) it re-reads the conflicting streams and decides the batch again;
 * after a store failure it re-reads every stream of the commit, since whether it was written is unknown.
 */
import { Clock, Effect, Option, Schema } from "effect"
import type { CommandOutcome, CommandReply, IncomingCommand } from "../../domain/CommandBus.ts"
import { Deciders } from "../../domain/DeciderRegistry.ts"
import { CommandIdReused, CommandRefused, type EntityCommand, type EntityRejection, fingerprint, InvalidCommand, RevisionMismatch, stillAsChecked } from "../../domain/entity.ts"
import type { EntityKind } from "../../domain/EntityKind.ts"
import { EventMetadata, streamName } from "../../domain/envelope.ts"
import { type EventData, EventStore, type EventStoreError, type RecordedEvent, type StreamAppend } from "../../domain/EventStore.ts"
import { Reminders } from "../../domain/Reminders.ts"
import { shardOf } from "../../domain/shards.ts"
import type { EntitySnapshot } from "../../domain/snapshot.ts"
import { nextUuidv7 } from "../../domain/uuidv7.ts"
import { EntityMemory, type MemoryShare } from "./EntityMemory.ts"
import { type Memory, newMemory, type Remembered } from "./memory.ts"

export interface ShardBatchApplierOptions {
  /** the shard count (SHARDS), for reminders */
  readonly shards: number
  /** command ids remembered per entity; default 64 (a profile's commands are batches of records) */
  readonly recentCommands?: number
  /** entities whose folds stay cached, whatever the memory budget; default 100,000 */
  readonly maxCached?: number
}

export interface ShardBatchApplier {
  /** Applies these commands (all of batch-applied types), in order; answers each exactly once. */
  readonly apply: (commands: ReadonlyArray<IncomingCommand>) => Effect.Effect<void>
}

const PAGE = 1_000
const MAX_ATTEMPTS = 5
const unknown = Symbol("unknown")

/** One entity as the applier keeps it between batches. */
interface Entry {
  readonly kind: EntityKind
  readonly id: string
  readonly stream: string
  readonly memory: Memory
  share: MemoryShare | undefined
  evicted: boolean
  /** the reminder's due time last set (undefined: none); unknown until synced once */
  due: number | undefined | typeof unknown
  /** not read from the store: taken for a new entity, which the next append checks (`no_stream`) */
  assumedNew: boolean
}

/** What deciding one command came to in an attempt. */
type Decision =
  /** its events appended in this attempt; or, `again`, a later command of the batch under the same id */
  | { readonly _tag: "Events"; readonly entry: Entry; readonly again?: true }
  | { readonly _tag: "Reply"; readonly entry: Entry | undefined; readonly reply: CommandReply; readonly remember?: Remembered }
  | { readonly _tag: "Unchanged"; readonly entry: Entry; readonly remember: Remembered }
  | { readonly _tag: "Known"; readonly entry: Entry; readonly known: Remembered }

const metadataOf = Schema.decodeUnknownOption(EventMetadata)

/** A command's decided events as the store takes them, or why one does not encode (the first 300 characters). */
const encodeAll = (kind: EntityKind, events: ReadonlyArray<{ readonly _tag: string }>): Array<ReturnType<EntityKind["toEventData"]>> | string => {
  try {
    return events.map(kind.toEventData)
  } catch (cause) {
    return String(cause instanceof Error ? cause.message : cause).slice(0, 300)
  }
}

export const make = (options: ShardBatchApplierOptions) =>
  Effect.gen(function*() {
    const store = yield* EventStore
    const registry = yield* Deciders
    const budget = yield* Effect.serviceOption(EntityMemory)
    const reminders = yield* Effect.serviceOption(Reminders)
    const recentCommands = options.recentCommands ?? 64
    const maxCached = options.maxCached ?? 100_000
    // Insertion order is recency: an entry used again is re-inserted.
    const cache = new Map<string, Entry>()

    const drop = (entry: Entry) => {
      cache.delete(entry.stream)
      entry.share?.release()
      entry.share = undefined
    }
    yield* Effect.addFinalizer(() => Effect.sync(() => [...cache.values()].forEach(drop)))

    const rememberEvent = (entry: Entry, event: RecordedEvent, meta: EventMetadata | undefined) => {
      if (meta === undefined || !entry.kind.knowsEvent(event.type)) return undefined
      entry.memory.remember(meta.commandId, {
        _tag: "Accepted",
        outcome: entry.kind.outcomeOf(event.type, event.revision),
        revision: event.revision,
        fingerprint: meta.commandFingerprint
      })
      return meta.commandId
    }

    /** Folds `events` (the stream's next ones) into the entry; the entity as each command left it. */
    const foldIn = (entry: Entry, events: ReadonlyArray<RecordedEvent>, leftBy?: Map<string, EntitySnapshot | undefined>) => {
      let folded = entry.memory.folded
      // Each event's metadata decoded once (it was twice: for the event, and as the one after its predecessor).
      const metas = events.map((event) => Option.getOrUndefined(metadataOf(event.metadata)))
      // Folded a run at a time (replay: a type with evolveMany copies its state once a run), cut only where
      // the entity as a command of this batch left it is wanted (leftBy's keys). Event by event, a profile
      // of 10,000 memberships and 2,300 events held the event loop so long at a restart's first read that
      // the process failed (stop 23's fourth outside attack).
      let from = 0
      events.forEach((event, i) => {
        const commandId = rememberEvent(entry, event, metas[i])
        if (leftBy !== undefined && commandId !== undefined && leftBy.has(commandId) && (i + 1 === events.length || metas[i + 1]?.commandId !== commandId)) {
          folded = entry.kind.replay(events.slice(from, i + 1), folded)
          from = i + 1
          leftBy.set(commandId, entry.kind.snapshot(entry.id, folded))
        }
      })
      entry.memory.setFolded(from === events.length ? folded : entry.kind.replay(events.slice(from), folded))
    }

    /** Reads whatever the stream holds past the entry's fold. */
    const catchUp = (entry: Entry, leftBy?: Map<string, EntitySnapshot | undefined>) =>
      Effect.gen(function*() {
        for (;;) {
          const page = yield* store.readStream(entry.stream, { fromRevision: entry.memory.folded.revision + 1, maxCount: PAGE })
          foldIn(entry, page, leftBy)
          if (page.length < PAGE) return
        }
      })

    /**
     * An entity not cached is taken to be new (the common case: most profiles of a file are) without
     * reading its stream: the batch's append expects `no_stream` of it, or only checks that when its
     * commands wrote nothing, and a conflict says it exists: it is read then, and decided again.
     */
    const assumeNew = (kind: EntityKind, id: string, stream: string): Entry =>
      ({ kind, id, stream, memory: newMemory(kind.initial(), recentCommands), share: undefined, evicted: false, due: undefined, assumedNew: true })

    /** Re-reads an entry after a conflict or failure; one assumed new that exists gets its reminder synced. */
    const reread = (entry: Entry, leftBy: Map<string, EntitySnapshot | undefined> | undefined) =>
      Effect.gen(function*() {
        yield* catchUp(entry, leftBy)
        if (entry.assumedNew && entry.memory.folded.revision >= 0) entry.due = unknown
        entry.assumedNew = false
      })

    /** The entry back in the cache, its bytes counted; an entry the budget evicted meanwhile is left out. */
    const keep = (entry: Entry) => {
      if (entry.evicted) return drop(entry)
      cache.delete(entry.stream)
      cache.set(entry.stream, entry)
      if (Option.isSome(budget)) {
        entry.share ??= budget.value.register(() => {
          entry.evicted = true
          cache.delete(entry.stream)
        })
        entry.share.use(entry.memory.bytes())
      }
    }

    /** The entity as a remembered command left it: the fold, this batch's read-back, or replayed from the store. */
    const stateAt = (entry: Entry, revision: number, leftBy: Map<string, EntitySnapshot | undefined> | undefined, commandId: string) =>
      Effect.gen(function*() {
        if (revision === entry.memory.folded.revision) return entry.kind.snapshot(entry.id, entry.memory.folded)
        const fresh = leftBy?.get(commandId)
        if (fresh !== undefined) return fresh
        const events = yield* store.readStream(entry.stream, { fromRevision: 0, maxCount: revision + 1 })
        return entry.kind.snapshot(entry.id, entry.kind.replay(events))
      })

    /** What a remembered command's answer says without its entity. */
    const rememberedOutcome = (known: Remembered): CommandOutcome =>
      known._tag === "Rejected" ? { _tag: "Rejected", error: known.error } : { _tag: "Accepted", outcome: known.outcome }

    /** The same, to a command sent again under a remembered id: refused when it asks something else. */
    const knownOutcome = (command: EntityCommand, known: Remembered): CommandOutcome =>
      known.fingerprint !== undefined && known.fingerprint !== fingerprint(command)
        ? { _tag: "Rejected", error: new CommandIdReused({ commandId: command.commandId }) }
        : rememberedOutcome(known)

    /** `outcome`, with the entity as the command left it when it was accepted. */
    const answerKnown = (entry: Entry, command: EntityCommand, known: Remembered, outcome: CommandOutcome, leftBy: Map<string, EntitySnapshot | undefined> | undefined) =>
      Effect.gen(function*() {
        if (outcome._tag !== "Accepted" || known._tag !== "Accepted") return outcome as CommandReply
        if (known.outcome === "unchanged") return { _tag: "Accepted", outcome: "unchanged", entity: entry.kind.snapshot(entry.id, entry.memory.folded) } satisfies CommandReply
        return { _tag: "Accepted", outcome: known.outcome, entity: yield* stateAt(entry, known.revision, leftBy, command.commandId) } satisfies CommandReply
      })

    /** Decides every command on the entities' working states, in order; the appends of the events. */
    const decideAll = (commands: ReadonlyArray<{ readonly incoming: IncomingCommand; readonly entry: Entry }>) =>
      Effect.gen(function*() {
        const working = new Map<Entry, { state: unknown; revision: number; readonly events: Array<EventData> }>()
        /** the commands decided in this batch, by stream and id (ids of two entities may be alike: commandIdRef) */
        const inBatch = new Set<string>()
        const decisions: Array<Decision> = []
        for (const { entry, incoming } of commands) {
          const { command } = incoming
          const known = entry.memory.recall(command.commandId)
          // A command id twice in one batch: the later one is answered as the first was.
          const decided = `${entry.stream}\n${command.commandId}`
          if (known !== undefined || inBatch.has(decided)) {
            decisions.push(known === undefined ? { _tag: "Events", entry, again: true } : { _tag: "Known", entry, known })
            continue
          }
          const asked = fingerprint(command)
          const rejected = (error: EntityRejection): Decision => ({ _tag: "Reply", entry, reply: { _tag: "Rejected", error }, remember: { _tag: "Rejected", error, fingerprint: asked } })
          const w = working.get(entry) ?? { state: entry.memory.folded.state, revision: entry.memory.folded.revision, events: [] }
          working.set(entry, w)
          const type = entry.kind.type
          if (command.expectedRevision !== undefined && command.expectedRevision !== w.revision) {
            decisions.push(rejected(new RevisionMismatch({ entityType: type, entityId: entry.id, expected: command.expectedRevision, actual: w.revision })))
            continue
          }
          if (!stillAsChecked(command, w.revision, () => entry.kind.decider.toJson(w.state))) {
            // not remembered (EntityCommand.checkedRevision)
            decisions.push({ _tag: "Reply", entry, reply: { _tag: "Rejected", error: new RevisionMismatch({ entityType: type, entityId: entry.id, expected: command.checkedRevision!, actual: w.revision }) } })
            continue
          }
          const decoded = entry.kind.decodeCommand(command.action)
          if (decoded._tag === "Failure") {
            decisions.push(rejected(new InvalidCommand({ entityType: type, issues: decoded.failure })))
            continue
          }
          const decision = entry.kind.decider.decide(decoded.success, w.state, { entityType: type, entityId: entry.id })
          if (decision._tag === "Failure") {
            decisions.push(rejected(decision.failure))
            continue
          }
          if (decision.success.length === 0) {
            decisions.push({ _tag: "Unchanged", entry, remember: { _tag: "Accepted", outcome: "unchanged", revision: w.revision, fingerprint: asked } })
            continue
          }
          const metadata: EventMetadata = {
            entityType: type,
            entityId: entry.id,
            commandId: command.commandId,
            correlationId: command.correlationId,
            causationId: command.causationId ?? command.commandId,
            commandFingerprint: asked
          }
          // Events that do not encode (a decider's slip on an input its rules let through) refuse their
          // command alone: thrown, they failed the whole batch at every retry, and a translator's job
          // sending it never moved again (stop 23's outside attack: an expiry in year −1).
          const encoded = encodeAll(entry.kind, decision.success)
          if (typeof encoded === "string") {
            decisions.push(rejected(new CommandRefused({ entityType: type, entityId: entry.id, reason: `the events it decided do not encode: ${encoded}` })))
            continue
          }
          for (const [k, event] of decision.success.entries()) {
            w.events.push({ eventId: yield* nextUuidv7, ...encoded[k]!, metadata })
            w.state = entry.kind.decider.evolve(w.state, event)
            w.revision++
          }
          inBatch.add(decided)
          decisions.push({ _tag: "Events", entry })
        }
        const appends: Array<{ readonly entry: Entry; readonly append: StreamAppend }> = []
        for (const [entry, w] of working) {
          if (w.events.length === 0 && !entry.assumedNew) continue
          const revision = entry.memory.folded.revision
          appends.push({ entry, append: { stream: entry.stream, events: w.events, expectedRevision: revision === -1 ? "no_stream" : revision } })
        }
        return { decisions, appends }
      })

    /**
     * What one commit recorded, folded into its entries: one read of the global order backwards from
     * its last event (a commit's events are contiguous there); a stream not found in it is read alone.
     */
    const readBack = (appends: ReadonlyArray<{ readonly entry: Entry; readonly append: StreamAppend }>, last: number, leftBy: Map<string, EntitySnapshot | undefined> | undefined) =>
      Effect.gen(function*() {
        for (const { entry } of appends) entry.assumedNew = false
        const written = appends.filter((a) => a.append.events.length > 0)
        const total = written.reduce((n, a) => n + a.append.events.length, 0)
        if (total === 0) return
        const recorded = yield* store.readAll({ direction: "backwards", fromPosition: last, maxCount: total })
        const byId = new Map(recorded.map((event) => [event.eventId, event]))
        for (const { append, entry } of written) {
          const base = entry.memory.folded.revision + 1
          const events = append.events.map((e) => byId.get(e.eventId))
          if (events.every((e, k) => e !== undefined && e.revision === base + k)) {
            foldIn(entry, events as Array<RecordedEvent>, leftBy)
          } else {
            yield* catchUp(entry, leftBy)
          }
        }
      })

    const syncReminders = (entries: Iterable<Entry>) =>
      Option.match(reminders, {
        onNone: () => Effect.void,
        onSome: (port) =>
          Effect.forEach([...entries], (entry) => {
            const wakeAt = entry.kind.decider.wakeAt
            if (wakeAt === undefined) return Effect.void
            const due = wakeAt(entry.memory.folded.state)
            if (due === entry.due) return Effect.void
            const change = due === undefined
              ? port.cancel(entry.kind.type, entry.id)
              : port.set({ entityType: entry.kind.type, entityId: entry.id, shard: shardOf(entry.id, options.shards), dueAt: due })
            return change.pipe(
              Effect.tap(() => Effect.sync(() => void (entry.due = due))),
              // the events are committed; the reminder is derived from them and set again at the next change or load
              Effect.catch((error) =>
                Effect.andThen(Effect.sync(() => void (entry.due = unknown)), Effect.logWarning("entity reminder not updated", { stream: entry.stream, error })))
            )
          }, { concurrency: 1_024, discard: true })
      })

    const applyBatch = (incoming: ReadonlyArray<IncomingCommand>, answered: Set<IncomingCommand>) =>
      Effect.gen(function*() {
        const answer = (message: IncomingCommand, reply: CommandReply) =>
          answered.has(message) ? Effect.void : Effect.andThen(Effect.sync(() => answered.add(message)), message.reply(reply))
        /** Answers with `outcome` a sender that reads it alone; the others with the full reply, built only for them. */
        const answerAccepted = (message: IncomingCommand, outcome: CommandOutcome, full: () => Effect.Effect<CommandReply, EventStoreError>) => {
          const replyOutcome = message.replyOutcome
          if (replyOutcome === undefined) return Effect.flatMap(full(), (reply) => answer(message, reply))
          return answered.has(message) ? Effect.void : Effect.andThen(Effect.sync(() => answered.add(message)), replyOutcome(outcome))
        }
        const now = yield* Clock.currentTimeMillis
        const entries = new Map<string, Entry>()
        const todo: Array<{ readonly incoming: IncomingCommand; readonly entry: Entry }> = []
        for (const message of incoming) {
          const { command } = message
          const kind = registry.get(command.entityType)
          if (kind === undefined) {
            yield* answer(message, { _tag: "Failed", message: `unknown entity type ${command.entityType}` })
            continue
          }
          const stream = streamName(command.entityType, command.entityId)
          let entry = entries.get(stream) ?? cache.get(stream)
          if (entry === undefined) entry = assumeNew(kind, command.entityId, stream)
          entries.set(stream, entry)
          // Its sender gave up waiting: applying it now could land it after newer commands it went on to send.
          const known = entry.memory.recall(command.commandId)
          if (known === undefined && command.deadline !== undefined && now > command.deadline) {
            yield* answer(message, { _tag: "Expired", deadline: command.deadline })
            continue
          }
          todo.push({ incoming: message, entry })
        }
        // The entity as each command left it, for the senders that read it back (not a translator's batch):
        // keyed by their command ids before their events are read back.
        const wanting = incoming.filter((message) => message.replyOutcome === undefined)
        const leftBy = wanting.length === 0 ? undefined : new Map<string, EntitySnapshot | undefined>(wanting.map((message) => [message.command.commandId, undefined]))
        for (let attempt = 1; ; attempt++) {
          const { appends, decisions } = yield* decideAll(todo)
          const appended = appends.length === 0
            ? Effect.succeed([])
            : store.appendToStreams(appends.map((a) => a.append))
          const result = yield* Effect.result(appended)
          if (result._tag === "Success") {
            if (result.success.length > 0) yield* readBack(appends, Math.max(...result.success.map((r) => r.position)), leftBy)
            // Reminders before answers: a command is acknowledged on the bus only once they are durable.
            yield* syncReminders(entries.values())
            for (const [i, { entry, incoming: message }] of todo.entries()) {
              const decision = decisions[i]!
              switch (decision._tag) {
                case "Reply":
                  if (decision.remember !== undefined) entry.memory.remember(message.command.commandId, decision.remember)
                  yield* answer(message, decision.reply)
                  break
                case "Unchanged":
                  entry.memory.remember(message.command.commandId, decision.remember)
                  yield* answerAccepted(message, { _tag: "Accepted", outcome: "unchanged" }, () =>
                    Effect.succeed({ _tag: "Accepted", outcome: "unchanged", entity: entry.kind.snapshot(entry.id, entry.memory.folded) }))
                  break
                case "Known": {
                  const outcome = knownOutcome(message.command, decision.known)
                  yield* answerAccepted(message, outcome, () => answerKnown(entry, message.command, decision.known, outcome, leftBy))
                  break
                }
                case "Events": {
                  const { commandId } = message.command
                  const known = entry.memory.recall(commandId)
                  if (known === undefined) return yield* Effect.die(new Error(`appended to ${entry.stream} but the events were not read back`))
                  // Decided in this batch, from this very command (its fingerprint is the one remembered; a
                  // later one under the same id is compared): answered with the entity as it left it.
                  const outcome = decision.again ? knownOutcome(message.command, known) : rememberedOutcome(known)
                  const left = leftBy?.get(commandId)
                  yield* answerAccepted(message, outcome, () =>
                    outcome._tag === "Accepted" && known._tag === "Accepted" && known.outcome !== "unchanged" && left !== undefined
                      ? Effect.succeed({ _tag: "Accepted", outcome: known.outcome, entity: left })
                      : answerKnown(entry, message.command, known, outcome, leftBy))
                }
              }
            }
            break
          }
          const error = result.failure
          // A conflict wrote nothing: re-read the streams that moved. A failure may have written: re-read all.
          const stale = error._tag === "WrongExpectedRevisions"
            ? appends.filter((a) => error.conflicts.some((c) => c.stream === a.append.stream))
            : appends
          if (error._tag === "EventStoreError") yield* Effect.logWarning("batch append failed; re-reading", { streams: appends.length, error })
          yield* Effect.forEach(stale, ({ entry }) => reread(entry, leftBy), { discard: true })
          if (attempt >= MAX_ATTEMPTS) {
            for (const { incoming: message } of todo) {
              yield* answer(message, { _tag: "Failed", message: `${message.command.entityType} ${message.command.entityId}: gave up after ${attempt} failed batch appends` })
            }
            break
          }
        }
        for (const entry of entries.values()) keep(entry)
        while (cache.size > maxCached) drop(cache.values().next().value!)
      }).pipe(
        // Every command gets an answer, whatever went wrong; what was cached of its entities may be
        // half-updated, so it is forgotten and read again at the next command.
        Effect.catchCause((cause) =>
          Effect.gen(function*() {
            yield* Effect.logError("batch of entity commands failed", { cause })
            for (const message of incoming) {
              const cached = cache.get(streamName(message.command.entityType, message.command.entityId))
              if (cached !== undefined) drop(cached)
              if (!answered.has(message)) yield* message.reply({ _tag: "Failed", message: `${message.command.entityType} ${message.command.entityId}: the command failed; retry` })
            }
          }))
      )

    return { apply: (commands) => applyBatch(commands, new Set()) } satisfies ShardBatchApplier
  })
