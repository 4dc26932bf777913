/**
 * The registry of entity types: each type's decider, by name. The platform's generic parts (entity
 * actors, relay, read model, routes) look types up here. `Deciders` is a reference whose default is
 * the built-in list (domain/entities/index.ts); the platform or a test provides another.
 */
import { Context } from "effect"
import type { AnyDecider } from "./Decider.ts"
import { deciders as builtIn } from "./entities/index.ts"
import { type EntityKind, makeEntityKind } from "./EntityKind.ts"

export interface DeciderRegistry {
  readonly get: (type: string) => EntityKind | undefined
  /** every registered type, in registration order */
  readonly kinds: ReadonlyArray<EntityKind>
}

export const makeRegistry = (deciders: ReadonlyArray<AnyDecider>): DeciderRegistry => {
  const kinds = deciders.map(makeEntityKind)
  const byType = new Map(kinds.map((kind) => [kind.type, kind]))
  if (byType.size !== kinds.length) throw new Error("two deciders declare the same entity type")
  for (const kind of kinds) {
    if (!/^[a-z][a-z0-9_]*$/.test(kind.type)) throw new Error(`entity type ${kind.type}: lower-case letters, digits and _ only (it is a subject token and a stream prefix)`)
  }
  return { get: (type) => byType.get(type), kinds }
}

export const Deciders = Context.Reference<DeciderRegistry>("tributary/Deciders", { defaultValue: () => makeRegistry(builtIn) })
