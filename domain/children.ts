/**
 * The children index: which entities belong to a parent (campaigns to an advertiser, strategies to a
 * campaign), kept in the event store beside the parent's own stream, so that creating a child and
 * deleting its parent can exclude each other in the store itself, whichever processes run them:
 *
 * - a child linked to a parent appends `ChildLinked` to the parent's index (unchecked: siblings never
 *   wait on one another) and checks, in the same multi-stream append, that the parent's stream is
 *   still at the revision it decided on (the parent existed);
 * - deleting the parent appends to its own stream and checks, in the same append, that its index is
 *   still at the revision it read (no child linked since).
 *
 * Whichever commits first changes what the other checked, so the other re-reads and decides again:
 * a child of a deleted parent is refused (ParentNotFound), a parent with a live child too.
 *
 * The index is not entity history: its events carry no entity envelope, so HISTORY, SNAPSHOTS and
 * the read models (which take only envelopes, domain/envelope.ts) never show them.
 */
import { Schema } from "effect"
import type { EventData, RecordedEvent } from "./EventStore.ts"

/** An entity named by type and id. */
export const EntityRef = Schema.Struct({ type: Schema.String, id: Schema.String })
export type EntityRef = typeof EntityRef.Type

/** The index of `parent`'s children: `<type>.children-<id>` (entity types never contain "."). */
export const childrenStream = (parent: EntityRef): string => `${parent.type}.children-${parent.id}`

/** Whether a stream is a children index rather than an entity's history. */
export const isChildrenStream = (stream: string): boolean => /^[a-z][a-z0-9_]*\.children-/.test(stream)

const ChildLinked = "ChildLinked"
const ChildUnlinked = "ChildUnlinked"

/** Metadata of index events: no entity envelope, only what traces the command that wrote them. */
export const IndexMetadata = Schema.Struct({
  index: Schema.Literal("children"),
  commandId: Schema.String,
  correlationId: Schema.String
})
export type IndexMetadata = typeof IndexMetadata.Type

/** The index event recording that `child` now belongs to the index's parent, or no longer does. */
export const childEvent = (eventId: string, linked: boolean, child: EntityRef, metadata: IndexMetadata): EventData => ({
  eventId,
  type: linked ? ChildLinked : ChildUnlinked,
  data: { type: child.type, id: child.id },
  metadata
})

const decodeRef = Schema.decodeUnknownOption(EntityRef)

/** The children an index's events leave linked. */
export const liveChildren = (events: ReadonlyArray<Pick<RecordedEvent, "type" | "data">>): ReadonlyArray<EntityRef> => {
  const linked = new Map<string, EntityRef>()
  for (const event of events) {
    const ref = decodeRef(event.data)
    if (ref._tag === "None") continue
    const key = `${ref.value.type}-${ref.value.id}`
    if (event.type === ChildLinked) linked.set(key, ref.value)
    else if (event.type === ChildUnlinked) linked.delete(key)
  }
  return [...linked.values()]
}

/** Two references to the same entity (or both none). */
export const sameEntity = (a: EntityRef | undefined, b: EntityRef | undefined): boolean =>
  a === undefined || b === undefined ? a === b : a.type === b.type && a.id === b.id
