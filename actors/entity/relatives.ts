/**
 * What an entity actor reads of an entity's relatives just before deciding (domain/children.ts): the
 * parent a command puts the entity under, and the entity's own live children. Each comes with the
 * revision it was read at, which the actor's append then expects, so the decision only commits if
 * they are still as read: otherwise the actor reads them again and decides again.
 */
import { Effect, Option } from "effect"
import { childrenStream, type EntityRef, liveChildren } from "../../domain/children.ts"
import type { ParentState } from "../../domain/Decider.ts"
import { Deciders } from "../../domain/DeciderRegistry.ts"
import { streamName } from "../../domain/envelope.ts"
import { EventStore, type ExpectedRevision, type RecordedEvent, type StreamAppend } from "../../domain/EventStore.ts"
import { KeptSnapshots } from "../../domain/KeptSnapshots.ts"
import type { Folded } from "../../domain/fold.ts"

const PAGE = 1_000

/** A check of a stream in a multi-stream append: no events, only "still at the revision read". */
const unchanged = (stream: string, revision: number): StreamAppend => ({
  stream,
  events: [],
  expectedRevision: (revision === -1 ? "no_stream" : revision) satisfies ExpectedRevision
})

export const makeRelatives = Effect.gen(function*() {
  const store = yield* EventStore
  const registry = yield* Deciders
  const kept = yield* Effect.serviceOption(KeptSnapshots)

  /** Every event of a stream from `fromRevision`, page by page. */
  const readFrom = (stream: string, fromRevision: number) =>
    Effect.gen(function*() {
      const events: Array<RecordedEvent> = []
      for (;;) {
        const page: ReadonlyArray<RecordedEvent> = yield* store.readStream(stream, { fromRevision: fromRevision + events.length, maxCount: PAGE })
        events.push(...page)
        if (page.length < PAGE) return events
      }
    })

  /** The parent as the store has it now, and the check that it is still so when the decision commits. */
  const parent = (ref: EntityRef) =>
    Effect.gen(function*() {
      const kind = registry.get(ref.type)
      // A type this process does not know has no entities here: no parent of that type exists.
      if (kind === undefined) return { state: { ...ref, exists: false } satisfies ParentState, check: Option.none<StreamAppend>() }
      const start = Option.isNone(kept) ? Option.none() : Option.flatMap(
        yield* kept.value.atOrBefore(ref.type, ref.id).pipe(Effect.orElseSucceed(() => Option.none())),
        kind.fromKept
      )
      const from: Folded = Option.getOrElse(start, kind.initial)
      const folded = kind.replay(yield* readFrom(streamName(ref.type, ref.id), from.revision + 1), from)
      return {
        state: { ...ref, exists: kind.exists(folded) } satisfies ParentState,
        check: Option.some(unchanged(streamName(ref.type, ref.id), folded.revision))
      }
    })

  /** The entity's live children, and the check that none was linked or unlinked when the decision commits. */
  const children = (ref: EntityRef) =>
    Effect.gen(function*() {
      const stream = childrenStream(ref)
      const events = yield* readFrom(stream, 0)
      return { children: liveChildren(events), check: unchanged(stream, events.at(-1)?.revision ?? -1) }
    })

  /** Whether entities of `type` can have children (some registered type names it as its parent's). */
  const hasChildren = (type: string) => registry.kinds.some((kind) => kind.decider.parentType === type)

  return { parent, children, hasChildren }
})
