/**
 * The relay's bounded memory of each entity's latest state, so a snapshot costs one `evolve` instead
 * of a stream read. A miss, or an event that does not follow the cached revision, folds the entity's
 * stream from the event store up to that event.
 */
import { Effect, Option } from "effect"
import type { EventStore, EventStoreError, RecordedEvent } from "../domain/EventStore.ts"
import { initialState, replay } from "../domain/entity.ts"
import type { EntityState } from "../domain/entity.ts"

export interface EntityStateCache {
  /** The state right after `event`; none when the stream holds events the entity decider does not know. */
  readonly after: (event: RecordedEvent) => Effect.Effect<Option.Option<EntityState>, EventStoreError>
}

const fold = (events: ReadonlyArray<RecordedEvent>, start: EntityState): Option.Option<EntityState> => {
  try {
    return Option.some(replay(events, start))
  } catch {
    // evolveRecorded throws on an unknown event type: not an entity stream (or a newer writer);
    // the relay still publishes its history, only without a snapshot.
    return Option.none()
  }
}

export const makeEntityStateCache = (store: EventStore["Service"], capacity: number): EntityStateCache => {
  // A Map iterates in insertion order: re-inserting on use keeps the least recently used first.
  const states = new Map<string, EntityState>()
  const remember = (stream: string, state: EntityState) => {
    states.delete(stream)
    states.set(stream, state)
    if (states.size > capacity) states.delete(states.keys().next().value!)
  }
  const after = (event: RecordedEvent) =>
    Effect.suspend(() => {
      const cached = states.get(event.stream)
      // The store is immutable, so a state cached at this very revision (a replay) is still right.
      if (cached !== undefined && cached.revision === event.revision) return Effect.succeed(Option.some(cached))
      if (cached !== undefined && cached.revision === event.revision - 1) {
        return Effect.succeed(fold([event], cached))
      }
      return store.readStream(event.stream, { fromRevision: 0, maxCount: event.revision + 1 }).pipe(
        Effect.map((events) => fold(events.filter((e) => e.revision <= event.revision), initialState()))
      )
    }).pipe(Effect.tap((state) =>
      Effect.sync(() => Option.isSome(state) ? remember(event.stream, state.value) : void states.delete(event.stream))
    ))
  return { after }
}
