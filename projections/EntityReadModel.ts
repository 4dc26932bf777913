/**
 * The entity read model: the current state of every entity (listable by type with a cursor) and,
 * every `snapshotEvery` revisions, a kept snapshot so that point-in-time reads start near their
 * target instead of at revision 0. Its checkpoint (the global position applied last) is written in
 * the same transaction as the change, so a restart neither skips nor re-applies an event.
 * Declared here; stored by infra/readmodel/sqlite.ts.
 */
import { Context, Schema } from "effect"
import type { Effect, Option } from "effect"
import type { EventEnvelope } from "../domain/envelope.ts"
import type { EntitySnapshot } from "../domain/snapshot.ts"

export class ReadModelError extends Schema.TaggedError<ReadModelError>()("ReadModelError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {}

export interface EntityPage {
  readonly items: ReadonlyArray<EntitySnapshot>
  /** whether entities follow the last item */
  readonly more: boolean
}

export class EntityReadModel extends Context.Service<EntityReadModel, {
  /** Applies events (in global order) and advances the checkpoint, in one transaction. */
  readonly apply: (events: ReadonlyArray<EventEnvelope>) => Effect.Effect<void, ReadModelError>
  /** Position of the last event applied; undefined when none. */
  readonly checkpoint: Effect.Effect<number | undefined, ReadModelError>
  /** Forgets everything, checkpoint included (before a rebuild). */
  readonly reset: Effect.Effect<void, ReadModelError>
  readonly get: (type: string, id: string) => Effect.Effect<Option.Option<EntitySnapshot>, ReadModelError>
  /** Live (not deleted) entities of a type in numeric id order, after the id `after` when given. */
  readonly list: (type: string, options: { readonly limit: number; readonly after?: string }) => Effect.Effect<EntityPage, ReadModelError>
  /** The newest kept snapshot recorded at or before `asOf` (any time when absent). */
  readonly snapshotAtOrBefore: (type: string, id: string, asOf?: string) => Effect.Effect<Option.Option<EntitySnapshot>, ReadModelError>
}>()("tributary/EntityReadModel") {}
