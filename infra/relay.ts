/**
 * The history relay: tails the event store's global order from a durable checkpoint and publishes
 * every event to HISTORY (`history.<type>.<id>`) in commit order, then each touched entity's new state
 * to SNAPSHOTS (`snapshot.<type>.<id>`), for the entity types whose decider publishes snapshots (folded
 * with that decider). The event store stays the source of truth; JetStream is derived.
 *
 * Exactly once in HISTORY, in order, across crashes:
 * - a batch is published on one connection without waiting in between (order is kept by the
 *   connection), every acknowledgement awaited, and only then is the checkpoint advanced;
 * - each HISTORY publish expects the stream's last sequence to be the one before it, so if a publish
 *   fails, none after it can land out of order; the relay then restarts from a fresh read of both ends;
 * - on start the relay reads the `Tributary-Position` of HISTORY's last message and does not publish
 *   history at or below it again, so a crash between publish and checkpoint duplicates nothing, even
 *   beyond JetStream's duplicate window (`Nats-Msg-Id = eventId` covers the rest);
 * - snapshots of events between the checkpoint and that position are re-published, since the crash
 *   may have come between the HISTORY and SNAPSHOTS publishes — each only if SNAPSHOTS does not
 *   already hold that entity at the same or a later revision (a relay taking over from another, or
 *   from an old checkpoint, never takes SNAPSHOTS back in time), and each SNAPSHOTS publish expects
 *   that stream's last sequence too, so a relay paused past its lease cannot either (relayStreams.ts);
 * - the checkpoint is decoded, and an invalid one replaced from HISTORY's tail (repairCheckpoint).
 *
 * Events with no Tributary envelope are skipped, counted and logged once each.
 */
import { Clock, Duration, Effect, Layer, Metric, Option, Ref, Schedule, Stream } from "effect"
import { EventStore } from "../domain/EventStore.ts"
import type { RecordedEvent } from "../domain/EventStore.ts"
import { isChildrenStream } from "../domain/children.ts"
import { toEnvelope } from "../domain/envelope.ts"
import type { EventEnvelope } from "../domain/envelope.ts"
import { Deciders } from "../domain/DeciderRegistry.ts"
import { KeptSnapshots } from "../domain/KeptSnapshots.ts"
import type { EntitySnapshot } from "../domain/snapshot.ts"
import { checkpointSubject } from "../domain/subjects.ts"
import { makeEntityStateCache } from "./entityStateCache.ts"
import { makeAckedPublisher } from "./nats/ackedPublisher.ts"
import { withLease } from "./nats/lease.ts"
import { Nats } from "./nats/Nats.ts"
import { type CheckpointInvalid, openRelayCheckpoint, RelayError, type RelayCheckpoint } from "./relayCheckpoint.ts"
import { historyTail, publishBatch, snapshotRevision, snapshotsTail, type Tails } from "./relayStreams.ts"

export { RelayError } from "./relayCheckpoint.ts"
export { RelayHeaders } from "./relayStreams.ts"

export interface RelayOptions {
  /** the checkpoint's name (`checkpoint.<name>`); default "history" */
  readonly name?: string
  /** most events per batch (one round of acks); default 256 */
  readonly maxBatch?: number
  /**
   * how long a batch waits to fill up; default none: a batch is whatever the store had when the
   * relay asked (events committed during one publish round make the next batch), so no event waits
   * for a timer
   */
  readonly batchWindow?: Duration.Input
  /**
   * how often the checkpoint is written; default 5 seconds. The checkpoint only bounds the snapshot
   * re-check after a restart (HISTORY's own tail says what was published), and writing it much more
   * often showed in the commit → HISTORY tail latency (bench (c)).
   */
  readonly checkpointEvery?: Duration.Input
}

export const eventsRelayed = Metric.counter("tributary_relay_events_total", {
  description: "Events published to HISTORY by the relay",
  incremental: true
})
export const relayLag = Metric.gauge("tributary_relay_lag_events", {
  description: "Store positions not yet relayed: head position minus the relay's (HISTORY's tail, or its checkpoint past skipped events); grows while the relay is stuck"
})
export const undecodableEvents = Metric.counter("tributary_relay_undecodable_events_total", {
  description: "Events of the store the relay skipped: no Tributary envelope (metadata), so not published to HISTORY",
  incremental: true
})
export const checkpointsRepaired = Metric.counter("tributary_relay_checkpoint_repairs_total", {
  description: "Invalid relay checkpoints replaced by a position derived from HISTORY's tail",
  incremental: true
})
export const commitToPublish = Metric.histogram("tributary_relay_commit_to_publish_seconds", {
  description: "Time from an event's commit (recordedAt) to its HISTORY acknowledgement",
  boundaries: Metric.exponentialBoundaries({ start: 0.001, factor: 2, count: 16 })
})

/**
 * Where to resume when the checkpoint is invalid (CheckpointInvalid): HISTORY's tail says what was
 * published, and a crash can only have left the snapshots of the last batch unpublished, so the relay
 * resumes `maxBatch` positions before that tail (HISTORY gets nothing twice: it skips what is at or
 * below its tail) and replaces the checkpoint at once. Without a known tail it refuses, loudly: any
 * position would risk publishing HISTORY twice or skipping events.
 */
const repairCheckpoint = (
  options: RelayOptions,
  checkpoint: RelayCheckpoint,
  tail: { readonly lastSeq: number; readonly position: number; readonly known: boolean },
  maxBatch: number
) =>
  (invalid: CheckpointInvalid) =>
    Effect.gen(function*() {
      if (!tail.known) {
        return yield* new RelayError({
          operation: "load checkpoint",
          cause: `the checkpoint is invalid (${invalid.stored}: ${invalid.reason}) and HISTORY's last message carries no position; ` +
            `publish the last relayed position on ${checkpointSubject(options.name ?? "history")} to resume`
        })
      }
      const from = Math.max(0, tail.position - maxBatch)
      yield* Effect.logError("relay checkpoint invalid; resuming from HISTORY's tail and replacing it", {
        stored: invalid.stored,
        reason: invalid.reason,
        historyPosition: tail.position,
        resumeAfter: from
      })
      yield* checkpoint.save(from)
      yield* Metric.update(checkpointsRepaired, 1)
      return from
    })

/**
 * One run of the relay, from a fresh read of the checkpoint and of HISTORY's tail until it fails.
 * `skipped`: the highest position of an undecodable event already counted and logged by this process.
 */
const relayOnce = (options: RelayOptions, skipped: Ref.Ref<number>) =>
  Effect.gen(function*() {
    const store = yield* EventStore
    const checkpoint = yield* openRelayCheckpoint(options.name ?? "history")
    // Entity states kept in memory count against the process's ENTITY_MEMORY_BYTES (EntityMemory).
    const cache = yield* makeEntityStateCache(store, yield* Deciders, yield* Effect.serviceOption(KeptSnapshots))
    const maxBatch = options.maxBatch ?? 256
    const tail = yield* historyTail
    let tails: Tails = { history: tail.lastSeq, snapshots: yield* snapshotsTail }
    const publisher = yield* makeAckedPublisher((yield* Nats).connection)
    const published = tail.position
    const start = yield* checkpoint.load.pipe(Effect.catchTag("CheckpointInvalid", repairCheckpoint(options, checkpoint, tail, maxBatch)))
    yield* Effect.logInfo("relay starting", { checkpoint: start, historyPosition: published, historySeq: tail.lastSeq })

    const relayBatch = (events: ReadonlyArray<RecordedEvent>) =>
      Effect.gen(function*() {
        const history: Array<EventEnvelope> = []
        const snapshots = new Map<string, { snapshot: EntitySnapshot; eventId: string }>()
        for (const event of events) {
          // A children index (domain/children.ts) is the platform's own bookkeeping, not an entity's history.
          if (isChildrenStream(event.stream)) continue
          const envelope = toEnvelope(event)
          if (Option.isNone(envelope)) {
            // Counted and logged once: not again when re-read after a restart, nor once HISTORY is past it.
            if (event.position > Math.max(published, yield* Ref.get(skipped))) {
              yield* Ref.set(skipped, event.position)
              yield* Metric.update(undecodableEvents, 1)
              yield* Effect.logWarning("relay skipped an event that is no Tributary entity event (no envelope metadata)", {
                position: event.position,
                eventId: event.eventId,
                stream: event.stream,
                type: event.type
              })
            }
            continue
          }
          const e = envelope.value
          if (e.position > published) history.push(e)
          const snapshot = yield* cache.after(e)
          if (Option.isSome(snapshot)) {
            // latest state per entity in this batch: SNAPSHOTS keeps only the last one anyway
            snapshots.delete(event.stream)
            snapshots.set(event.stream, { snapshot: snapshot.value, eventId: e.eventId })
          }
        }
        // Snapshots of events already in HISTORY are re-published only where SNAPSHOTS is behind them.
        const outgoing: Array<{ snapshot: EntitySnapshot; eventId: string }> = []
        for (const entry of snapshots.values()) {
          if (entry.snapshot.position > published || (yield* snapshotRevision(entry.snapshot)) < entry.snapshot.revision) outgoing.push(entry)
        }
        tails = yield* publishBatch(publisher, { history, snapshots: outgoing }, tails)
        const now = yield* Clock.currentTimeMillis
        for (const e of history) {
          yield* Metric.update(commitToPublish, Math.max(0, now - Date.parse(e.recordedAt)) / 1000)
        }
        yield* Metric.update(eventsRelayed, history.length)
        relayed = events[events.length - 1]!.position
        const head = yield* store.headPosition
        yield* Metric.update(relayLag, Math.max(0, (head ?? 0) - relayed))
      })

    // The checkpoint is written beside the relaying, never holding it up: every `checkpointEvery`
    // while there is progress, and once more when the relay stops. A failed save fails the relay.
    let relayed = start
    let saved = start
    const saveCheckpoint = Effect.suspend(() => {
      if (relayed === saved) return Effect.void
      const position = relayed
      return Effect.map(checkpoint.save(position), () => void (saved = position))
    })
    yield* Effect.addFinalizer(() => Effect.ignore(saveCheckpoint))
    const saving = Effect.forever(Effect.andThen(Effect.sleep(options.checkpointEvery ?? "5 seconds"), saveCheckpoint))

    const events = store.subscribeToAll({ after: start })
    const relaying = options.batchWindow === undefined
      ? events.pipe(Stream.runForEachArray((page) =>
        Effect.forEach(chunksOf(page, maxBatch), relayBatch, { discard: true })))
      : events.pipe(Stream.groupedWithin(maxBatch, options.batchWindow), Stream.runForEach(relayBatch))
    return yield* Effect.raceFirst(relaying, saving)
  }).pipe(Effect.scoped)

const chunksOf = <A>(items: ReadonlyArray<A>, size: number): Array<ReadonlyArray<A>> => {
  const chunks: Array<ReadonlyArray<A>> = []
  for (let i = 0; i < items.length; i += size) chunks.push(items.slice(i, i + size))
  return chunks
}

/**
 * Runs the relay until interrupted. Any failure (event store, NATS, checkpoint) is logged and the
 * relay restarts with backoff from a fresh read of the checkpoint and of HISTORY's tail.
 * Needs `EventStore` and `Nats`; HISTORY and SNAPSHOTS must exist (`ensureTopology`).
 */
export const runRelay = (options: RelayOptions): Effect.Effect<never, never, EventStore | Nats> =>
  Effect.flatMap(Ref.make(0), (skipped) =>
    relayOnce(options, skipped).pipe(
      Effect.andThen(Effect.fail(new RelayError({ operation: "subscribeToAll", cause: "the subscription ended" }))),
      Effect.tapError((error) => Effect.logWarning("relay failed; restarting", error)),
      // exponential backoff capped at 5 seconds, forever: the relay must outlive any outage
      Effect.retry(Schedule.min([Schedule.exponential("50 millis"), Schedule.spaced("5 seconds")])),
      Effect.orDie // unreachable: the schedule never gives up
    ))

/**
 * The relay as a layer, in the background while the layer is alive. However many platform processes
 * run, one relays at a time: the holder of the `relay` lease (the others wait to take over).
 */
export const layerRelay = (options: RelayOptions): Layer.Layer<never, never, EventStore | Nats> =>
  Layer.effectDiscard(Effect.forkScoped(withLease("relay", runRelay(options)).pipe(
    Effect.tapError((error) => Effect.logError("relay lease failed", error)),
    Effect.retry(Schedule.spaced("1 second"))
  )))
