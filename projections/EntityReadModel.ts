/**
 * The entity read model, as queries see it: the current state of every entity (listable by type with
 * a cursor) and, every `snapshotEvery` revisions, a kept snapshot so that point-in-time reads start near
 * their target instead of at revision 0. The `entities` projection (declared as data in
 * infra/readmodel/entities.ts, its pure part in projections/projectEntity.ts) writes it. Declared here; stored by infra/readmodel/sqlite.ts.
 */
import { Context } from "effect"
import type { Effect, Option } from "effect"
import type { EntitySnapshot, KeptSnapshot } from "../domain/snapshot.ts"
import type { ReadModelError } from "./ReadModelError.ts"

export { ReadModelError } from "./ReadModelError.ts"

export interface EntityPage {
  readonly items: ReadonlyArray<EntitySnapshot>
  /** whether entities follow the last item */
  readonly more: boolean
}

export class EntityReadModel extends Context.Service<EntityReadModel, {
  readonly get: (type: string, id: string) => Effect.Effect<Option.Option<EntitySnapshot>, ReadModelError>
  /** Live (not deleted) entities of a type in numeric id order, after the id `after` when given. */
  readonly list: (type: string, options: { readonly limit: number; readonly after?: string }) => Effect.Effect<EntityPage, ReadModelError>
  /** The newest kept snapshot recorded at or before `asOf` (any time when absent). */
  readonly snapshotAtOrBefore: (type: string, id: string, asOf?: string) => Effect.Effect<Option.Option<KeptSnapshot>, ReadModelError>
}>()("tributary/EntityReadModel") {}
