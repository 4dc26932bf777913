/**
 * Reads of entities and their history. Current state and point-in-time state are folded from the
 * event store (the source of truth), starting at the newest kept snapshot before the wanted instant,
 * so a read is never older than an acknowledged write and stays fast for long histories.
 */
import { Effect, Option } from "effect"
import { Deciders } from "../domain/DeciderRegistry.ts"
import type { EntityKind } from "../domain/EntityKind.ts"
import { streamName, toEnvelopes } from "../domain/envelope.ts"
import { EventStore } from "../domain/EventStore.ts"
import type { Folded } from "../domain/fold.ts"
import type { EntitySnapshot } from "../domain/snapshot.ts"
import { EntityReadModel } from "./EntityReadModel.ts"

// One page covers the events after a kept snapshot (SNAPSHOT_EVERY defaults to 100).
const PAGE = 128

/**
 * The entity as it is now, or as it was at `asOf` (events recorded at or before it), from the
 * nearest earlier kept snapshot plus the events after it. None when it did not exist or was deleted,
 * or when its type is not registered.
 */
export const getEntity = (type: string, id: string, asOf?: string) =>
  Effect.gen(function*() {
    const kind = (yield* Deciders).get(type)
    if (kind === undefined) return Option.none<EntitySnapshot>()
    const store = yield* EventStore
    const model = yield* EntityReadModel
    const start = Option.flatMap(yield* model.snapshotAtOrBefore(type, id, asOf), kind.fromKept)
    let folded: Folded = Option.getOrElse(start, kind.initial)
    const stream = streamName(type, id)
    for (;;) {
      const page = yield* store.readStream(stream, { fromRevision: folded.revision + 1, maxCount: PAGE })
      // A page folded at once (a type with evolveMany copies its state once, not at each event).
      const after = asOf === undefined ? -1 : page.findIndex((event) => event.recordedAt > asOf)
      folded = kind.replay(after === -1 ? page : page.slice(0, after), folded)
      if (after !== -1 || page.length < PAGE) return found(kind, id, folded)
    }
  })

/** Which life of a record was current at a revision: the revision of the `EntityCreated` that began it. */
export interface Life {
  readonly revision: number
  readonly start: number
}

/**
 * The revision of the `EntityCreated` that began a record's life as of `atRevision` (a record deleted
 * and created again starts a new life under the same id); none before any. Reads back from
 * `atRevision`, so a read of the state at that revision and this agree on which life it is; given the
 * life `known` at an earlier revision, it reads back to that revision only.
 */
export const lifeStartRevision = (type: string, id: string, atRevision: number, known?: Life) =>
  Effect.gen(function*() {
    const store = yield* EventStore
    const stream = streamName(type, id)
    const stop = known !== undefined && known.revision <= atRevision ? known.revision : -1
    for (let from = atRevision; from > stop;) {
      const page = yield* store.readStream(stream, { direction: "backwards", fromRevision: from, maxCount: Math.min(PAGE, from - stop) })
      const created = page.find((event) => event.type === "EntityCreated")
      if (created !== undefined) return Option.some(created.revision)
      if (page.length === 0) break
      from = page.at(-1)!.revision - 1
    }
    return stop >= 0 ? Option.some(known!.start) : Option.none<number>()
  })

const found = (kind: EntityKind, id: string, folded: Folded): Option.Option<EntitySnapshot> =>
  kind.exists(folded) ? Option.some(kind.snapshot(id, folded)) : Option.none()

/** An entity's events in revision order, from `fromRevision`, recorded at or before `until`. */
export const entityHistory = (type: string, id: string, options: { readonly fromRevision: number; readonly until?: string; readonly limit: number }) =>
  Effect.gen(function*() {
    const store = yield* EventStore
    const events = yield* store.readStream(streamName(type, id), { fromRevision: options.fromRevision, maxCount: options.limit })
    const until = options.until
    return toEnvelopes(until === undefined ? events : events.filter((e) => e.recordedAt <= until))
  })

/**
 * Up to `limit` events in global commit order from `fromPosition` (inclusive), and the position the
 * next page starts at — a real event's position, since EventStoreDB's positions are not contiguous.
 */
export const globalHistory = (options: { readonly fromPosition?: number; readonly limit: number }) =>
  Effect.gen(function*() {
    const store = yield* EventStore
    const events = yield* store.readAll({
      ...(options.fromPosition === undefined ? {} : { fromPosition: options.fromPosition }),
      maxCount: options.limit + 1
    })
    return { events: toEnvelopes(events.slice(0, options.limit)), nextPosition: events[options.limit]?.position }
  })
