/** How one history event changes the entity read model: pure, so a rebuild gives the same rows. */
import { Option } from "effect"
import type { EntityKind } from "../domain/EntityKind.ts"
import type { EventEnvelope } from "../domain/envelope.ts"
import type { KeptSnapshot } from "../domain/snapshot.ts"

export type Projected =
  /** the entity's row after the event */
  | { readonly _tag: "Row"; readonly row: KeptSnapshot }
  /** the row already includes the event (a replay) */
  | { readonly _tag: "Replay" }
  /** an event this code does not know (written by a newer version): skipped rather than stopping every entity */
  | { readonly _tag: "Unknown" }

export const projectEvent = (kind: EntityKind, current: KeptSnapshot | undefined, event: EventEnvelope): Projected => {
  if (current !== undefined && event.revision <= current.revision) return { _tag: "Replay" }
  if (!kind.knowsEvent(event.type) || kind.decodeEvent(event.type, event.data)._tag === "Failure") return { _tag: "Unknown" }
  // A row whose state this version cannot decode (an older state schema) cannot be folded further.
  const from = current === undefined ? Option.some(kind.initial()) : kind.fromKept(current)
  if (Option.isNone(from)) return { _tag: "Unknown" }
  return { _tag: "Row", row: kind.kept(event.entityId, kind.apply(from.value, event)) }
}

/** Whether to keep this revision as a point-in-time snapshot: every `every`-th revision. */
export const keepsSnapshot = (snapshot: { readonly revision: number }, every: number): boolean => (snapshot.revision + 1) % every === 0
