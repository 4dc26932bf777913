/** How one history event changes the entity read model: pure, so a rebuild gives the same rows. */
import { Result } from "effect"
import { evolve, fromEventData, initialState } from "../domain/entity.ts"
import type { EventEnvelope } from "../domain/envelope.ts"
import { fromSnapshot, toSnapshot, type EntitySnapshot } from "../domain/snapshot.ts"

/**
 * The entity's row after `event`; undefined when the row already includes it (a replay) or when the
 * event is of a type this code does not know (written by a newer version): the read model skips it
 * rather than stopping for every entity.
 */
export const projectEvent = (current: EntitySnapshot | undefined, event: EventEnvelope): EntitySnapshot | undefined => {
  if (current !== undefined && event.revision <= current.revision) return undefined
  const decoded = fromEventData(event.type, event.data)
  if (Result.isFailure(decoded)) return undefined
  const state = evolve(current === undefined ? initialState() : fromSnapshot(current), decoded.success, event)
  return toSnapshot(event.entityType, event.entityId, state, event.position)
}

/** Whether to keep this revision as a point-in-time snapshot: every `every`-th revision. */
export const keepsSnapshot = (snapshot: EntitySnapshot, every: number): boolean => (snapshot.revision + 1) % every === 0
