/**
 * An entity's relatives, for its actor (domain/children.ts): before deciding a command that puts the
 * entity under a parent, it reads that parent; before deciding one that ends an entity whose type has
 * children, it reads the entity's children index. The decider gets what was read (it stays pure), and
 * the append gets a check that each is still at the revision read, plus the index events of a child
 * that changes parents: if a relative changed meanwhile the append fails, and the actor reads again
 * and decides again.
 */
import { Effect, Option, type Result } from "effect"
import { childEvent, childrenStream, type EntityRef, type IndexMetadata, liveChildren, sameEntity } from "../../domain/children.ts"
import type { DecideContext, ParentState } from "../../domain/Decider.ts"
import { Deciders } from "../../domain/DeciderRegistry.ts"
import type { EntityRejection } from "../../domain/entity.ts"
import type { EntityKind } from "../../domain/EntityKind.ts"
import { streamName } from "../../domain/envelope.ts"
import { EventStore, type RecordedEvent, type StreamAppend } from "../../domain/EventStore.ts"
import { KeptSnapshots } from "../../domain/KeptSnapshots.ts"
import type { Folded } from "../../domain/fold.ts"
import { nextUuidv7 } from "../../domain/uuidv7.ts"

const PAGE = 1_000

/** A check in a multi-stream append: no events, only "still at the revision read". */
const unchanged = (stream: string, revision: number): StreamAppend => ({ stream, events: [], expectedRevision: revision === -1 ? "no_stream" : revision })

export interface RelativesDecision {
  readonly decision: Result.Result<ReadonlyArray<{ readonly _tag: string }>, EntityRejection>
  /** What the append carries besides the entity's own events: the checks, and the index events of a move. */
  readonly appends: (metadata: IndexMetadata) => Effect.Effect<ReadonlyArray<StreamAppend>>
}

/** The relatives of the entity `id` of `kind`. */
export const makeRelatives = (kind: EntityKind, id: string) =>
  Effect.gen(function*() {
    const store = yield* EventStore
    const registry = yield* Deciders
    const kept = yield* Effect.serviceOption(KeptSnapshots)
    const decider = kind.decider
    const self: EntityRef = { type: kind.type, id }
    // Some registered type names this one as its parent's.
    const hasChildren = registry.kinds.some((other) => other.decider.parentType === kind.type)

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

    /** The parent as the store has it now (from its newest kept snapshot), and the check that it stays so. */
    const readParent = (ref: EntityRef) =>
      Effect.gen(function*() {
        const parentKind = registry.get(ref.type)
        // A type this process does not know has no entities here: no parent of that type exists.
        if (parentKind === undefined) return { state: { ...ref, exists: false } satisfies ParentState, check: [] }
        const start = Option.isNone(kept) ? Option.none() : Option.flatMap(
          yield* kept.value.atOrBefore(ref.type, ref.id).pipe(Effect.orElseSucceed(() => Option.none())),
          parentKind.fromKept
        )
        const from: Folded = Option.getOrElse(start, parentKind.initial)
        const folded = parentKind.replay(yield* readFrom(streamName(ref.type, ref.id), from.revision + 1), from)
        return { state: { ...ref, exists: parentKind.exists(folded) } satisfies ParentState, check: [unchanged(streamName(ref.type, ref.id), folded.revision)] }
      })

    /** The entity's live children, and the check that none is linked or unlinked meanwhile. */
    const readChildren = Effect.gen(function*() {
      const stream = childrenStream(self)
      const events = yield* readFrom(stream, 0)
      return { children: liveChildren(events), check: unchanged(stream, events.at(-1)?.revision ?? -1) }
    })

    /** The index events of a child leaving one parent (or none) for another (or none). */
    const links = (from: EntityRef | undefined, to: EntityRef | undefined, metadata: IndexMetadata) =>
      Effect.gen(function*() {
        const appends: Array<StreamAppend> = []
        for (const [parent, linked] of [[from, false], [to, true]] as const) {
          if (parent === undefined) continue
          appends.push({ stream: childrenStream(parent), events: [childEvent(yield* nextUuidv7, linked, self, metadata)], expectedRevision: "any" })
        }
        return appends
      })

    const nothing = (): Effect.Effect<ReadonlyArray<StreamAppend>> => Effect.succeed([])
    const decided = (decision: RelativesDecision["decision"], appends: RelativesDecision["appends"]): RelativesDecision => ({ decision, appends })

    /**
     * Decides `command` on `state`, first without relatives; when the result puts the entity under a
     * parent it was not under, or ends it while its type has children, reads those and decides again
     * with them (deciding is pure: the same inputs give the same answer).
     */
    const decide = (command: { readonly _tag: string }, state: unknown, base: DecideContext) =>
      Effect.gen(function*() {
        const first = decider.decide(command, state, base)
        if (first._tag === "Failure" || first.success.length === 0) return decided(first, nothing)
        const after = first.success.reduce(decider.evolve, state)
        const [from, to] = [decider.parentOf?.(state), decider.parentOf?.(after)]
        const moves = !sameEntity(from, to)
        const ends = hasChildren && decider.toJson(state) !== null && decider.toJson(after) === null
        if (!moves && !ends) return decided(first, nothing)
        const checks: Array<StreamAppend> = []
        let context = base
        if (moves && to !== undefined) {
          const parent = yield* readParent(to)
          context = { ...context, parent: parent.state }
          checks.push(...parent.check)
        }
        if (ends) {
          const children = yield* readChildren
          context = { ...context, children: children.children }
          checks.push(children.check)
        }
        return decided(
          context === base ? first : decider.decide(command, state, context),
          (metadata) => moves ? Effect.map(links(from, to, metadata), (events) => [...checks, ...events]) : Effect.succeed(checks)
        )
      })

    return { decide }
  })
