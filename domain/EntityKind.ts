/**
 * A registered decider made ready for the generic runtime: its codecs compiled once, and the fold,
 * snapshot and outcome rules every decider shares. Pure.
 */
import { Option, Result, Schema } from "effect"
import type { AnyDecider, Outcome } from "./Decider.ts"
import type { Folded, StoredEvent } from "./fold.ts"
import type { EntitySnapshot, KeptSnapshot } from "./snapshot.ts"
import { type FieldIssue, validate } from "./validation.ts"

export interface EntityKind {
  readonly type: string
  readonly decider: AnyDecider
  /** Whether this decider knows an event type (a newer version may write others). */
  readonly knowsEvent: (type: string) => boolean
  /** The event as stored: its tag as type, the rest as data. */
  readonly toEventData: (event: { readonly _tag: string }) => { readonly type: string; readonly data: Schema.Json }
  readonly decodeEvent: (type: string, data: unknown) => Result.Result<{ readonly _tag: string }, Schema.SchemaError>
  /** The envelope's `action` decoded with the decider's command schema, strictly. */
  readonly decodeCommand: (action: unknown) => Result.Result<{ readonly _tag: string }, ReadonlyArray<FieldIssue>>
  readonly initial: () => Folded
  /** Applies a stored event; an event type this decider does not know is a defect (it throws). */
  readonly apply: (folded: Folded, event: StoredEvent) => Folded
  /** The fold of stored events in revision order, from `from` (default: nothing yet). */
  readonly replay: (events: ReadonlyArray<StoredEvent>, from?: Folded) => Folded
  /** Whether the entity exists at this fold (created and not deleted). */
  readonly exists: (folded: Folded) => boolean
  readonly snapshot: (id: string, folded: Folded) => EntitySnapshot
  readonly kept: (id: string, folded: Folded) => KeptSnapshot
  /** The fold a kept snapshot stands for; none when its data does not decode (an older state schema). */
  readonly fromKept: (kept: KeptSnapshot) => Option.Option<Folded>
  /** The outcome the event of this type at this revision stands for. */
  readonly outcomeOf: (eventType: string, revision: number) => Outcome
}

type TaggedStructLike = { readonly fields?: { readonly _tag?: { readonly schema?: { readonly literal?: unknown } } } }

/** The tags an event schema declares: a union of tagged structs, or one. */
const tagsOf = (schema: unknown): ReadonlyArray<string> => {
  const members = (schema as { readonly members?: ReadonlyArray<TaggedStructLike> }).members ?? [schema as TaggedStructLike]
  return members.flatMap((member) => {
    const tag = member.fields?._tag?.schema?.literal
    return typeof tag === "string" ? [tag] : []
  })
}

export const makeEntityKind = (decider: AnyDecider): EntityKind => {
  const eventTypes: ReadonlySet<string> = new Set(tagsOf(decider.event))
  const decodeEventResult = Schema.decodeUnknownResult(decider.event)
  const encodeEvent = Schema.encodeSync(decider.event)
  const encodeState = Schema.encodeSync(decider.state)
  const decodeState = Schema.decodeUnknownOption(decider.state)
  const isDeleted = decider.isDeleted ?? (() => false)

  const decodeEvent = (type: string, data: unknown) => decodeEventResult({ ...(data as object), _tag: type })
  const isLive = decider.exists ?? ((state: unknown) => decider.toJson(state) !== null)
  const decoded = (event: StoredEvent) => Result.getOrThrow(decodeEvent(event.type, event.data))
  const apply = (folded: Folded, event: StoredEvent): Folded => {
    const state = decider.evolve(folded.state, decoded(event))
    const wasLive = folded.revision >= 0 && isLive(folded.state)
    const live = isLive(state)
    return {
      state,
      revision: event.revision,
      position: event.position,
      createdAt: !wasLive && live ? event.recordedAt : folded.createdAt,
      updatedAt: event.recordedAt
    }
  }
  /** Event by event until the entity exists; then, for a type that folds many at once, the rest together. */
  const replay = (events: ReadonlyArray<StoredEvent>, from: Folded = initial()): Folded => {
    const evolveMany = decider.evolveMany
    if (evolveMany === undefined) return events.reduce(apply, from)
    let folded = from
    let i = 0
    for (; i < events.length && !(folded.revision >= 0 && isLive(folded.state)); i++) folded = apply(folded, events[i]!)
    if (i === events.length) return folded
    const last = events.at(-1)!
    return {
      state: evolveMany(folded.state, events.slice(i).map(decoded)),
      revision: last.revision,
      position: last.position,
      createdAt: folded.createdAt,
      updatedAt: last.recordedAt
    }
  }
  const initial = (): Folded => ({ state: decider.initialState(), revision: -1, position: 0, createdAt: null, updatedAt: null })
  const snapshot = (id: string, folded: Folded): EntitySnapshot => ({
    type: decider.type,
    id,
    revision: folded.revision,
    position: folded.position,
    deleted: isDeleted(folded.state),
    state: decider.toJson(folded.state),
    createdAt: folded.createdAt,
    updatedAt: folded.updatedAt
  })
  return {
    type: decider.type,
    decider,
    knowsEvent: (type) => eventTypes.has(type),
    toEventData: (event) => {
      const { _tag, ...data } = encodeEvent(event) as { readonly _tag: string }
      return { type: _tag, data: data as Schema.Json }
    },
    decodeEvent,
    decodeCommand: (action) => validate(decider.command, action),
    initial,
    apply,
    replay,
    exists: (folded) => folded.revision >= 0 && isLive(folded.state),
    snapshot,
    kept: (id, folded) => ({ ...snapshot(id, folded), data: encodeState(folded.state) as Schema.Json }),
    fromKept: (kept) =>
      Option.map(decodeState(kept.data), (state) => ({
        state,
        revision: kept.revision,
        position: kept.position,
        createdAt: kept.createdAt,
        updatedAt: kept.updatedAt
      })),
    outcomeOf: (eventType, revision) =>
      (decider.outcomes as Partial<Record<string, Outcome>> | undefined)?.[eventType] ?? (revision === 0 ? "created" : "updated")
  }
}
