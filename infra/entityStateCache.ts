/**
 * The relay's bounded memory of each entity's latest state, so a snapshot costs one `evolve` instead
 * of a stream read. A miss, or an event that does not follow the cached revision, folds the entity's
 * stream from the event store up to that event, starting at the newest kept snapshot at or before it
 * when the process keeps them (KeptSnapshots). Only types that publish SNAPSHOTS are folded at all.
 *
 * Bounded in bytes, not entries: each cached state takes a share of the process's memory budget
 * (EntityMemory, ENTITY_MEMORY_BYTES, shared with the entity actors), and the budget evicts the least
 * recently used first. 10,000 states of 10,000 segment ids each are gigabytes; as many entries of one
 * field are nothing. Without the process's budget (a relay run on its own) it keeps a budget of its
 * own. The shares are given back when the relay run that made the cache ends.
 */
import { Effect, Option } from "effect"
import type { Scope } from "effect"
import { EntityMemory, make as makeBudget, type MemoryShare } from "../actors/entity/EntityMemory.ts"
import { heapBytes } from "../actors/entity/heapBytes.ts"
import type { KeptSnapshots } from "../domain/KeptSnapshots.ts"
import type { DeciderRegistry } from "../domain/DeciderRegistry.ts"
import type { EntityKind } from "../domain/EntityKind.ts"
import type { EventEnvelope } from "../domain/envelope.ts"
import type { EventStore, EventStoreError } from "../domain/EventStore.ts"
import { streamName } from "../domain/envelope.ts"
import type { Folded, StoredEvent } from "../domain/fold.ts"
import type { EntitySnapshot } from "../domain/snapshot.ts"

/** The cache's own budget when the process has none (EntityMemory not provided): 64 MiB. */
export const DEFAULT_CACHE_BYTES = 64 * 1_024 * 1_024

export interface EntityStateCache {
  /**
   * The snapshot right after `event`; none when its type publishes no snapshots, is not registered,
   * or its stream holds events the decider does not know.
   */
  readonly after: (event: EventEnvelope) => Effect.Effect<Option.Option<EntitySnapshot>, EventStoreError>
}

const fold = (kind: EntityKind, events: ReadonlyArray<StoredEvent>, start: Folded): Option.Option<Folded> => {
  try {
    return Option.some(kind.replay(events, start))
  } catch {
    // apply throws on an unknown event type (a newer writer): the relay still publishes its
    // history, only without a snapshot.
    return Option.none()
  }
}

export const makeEntityStateCache = (
  store: EventStore["Service"],
  registry: DeciderRegistry,
  kept: Option.Option<KeptSnapshots["Service"]> = Option.none()
): Effect.Effect<EntityStateCache, never, Scope.Scope> =>
  Effect.gen(function*() {
    const budget = Option.getOrElse(yield* Effect.serviceOption(EntityMemory), () => makeBudget(DEFAULT_CACHE_BYTES))
    const states = new Map<string, { folded: Folded; readonly share: MemoryShare }>()
    const forget = (stream: string) => {
      const entry = states.get(stream)
      if (entry === undefined) return
      states.delete(stream)
      entry.share.release()
    }
    yield* Effect.addFinalizer(() => Effect.sync(() => [...states.keys()].forEach(forget)))
    const remember = (stream: string, folded: Folded) => {
      let entry = states.get(stream)
      if (entry === undefined) {
        // The budget calls this back (at most once) when it takes the share for another holder.
        const share = budget.register(() => void states.delete(stream))
        entry = { folded, share }
        states.set(stream, entry)
      }
      entry.folded = folded
      entry.share.use(heapBytes(folded))
    }

    const after = (event: EventEnvelope) =>
      Effect.suspend(() => {
        const kind = registry.get(event.entityType)
        if (kind === undefined || !kind.decider.publishesSnapshots) return Effect.succeed(Option.none<EntitySnapshot>())
        const stream = streamName(event.entityType, event.entityId)
        const cached = states.get(stream)?.folded
        const folded = cached !== undefined && cached.revision === event.revision
          // The store is immutable, so a state cached at this very revision (a replay) is still right.
          ? Effect.succeed(Option.some(cached))
          : cached !== undefined && cached.revision === event.revision - 1
          ? Effect.succeed(fold(kind, [event], cached))
          : Effect.gen(function*() {
            const start = Option.isNone(kept) ? Option.none() : Option.flatMap(
              yield* kept.value.atOrBefore(event.entityType, event.entityId, event.revision).pipe(Effect.orElseSucceed(() => Option.none())),
              kind.fromKept
            )
            const from = Option.getOrElse(start, kind.initial)
            if (from.revision === event.revision) return Option.some(from)
            const events = yield* store.readStream(stream, { fromRevision: from.revision + 1, maxCount: event.revision - from.revision })
            return fold(kind, events.filter((e) => e.revision <= event.revision), from)
          })
        return folded.pipe(
          Effect.tap((state) => Effect.sync(() => Option.isSome(state) ? remember(stream, state.value) : forget(stream))),
          Effect.map(Option.map((state) => kind.snapshot(event.entityId, state)))
        )
      })
    return { after }
  })
