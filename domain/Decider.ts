/**
 * A decider as data (Emmett): how commands on one entity type become events, and events state.
 * `decide` and `evolve` are pure; time, ids and looked-up values arrive inside the command (or its
 * envelope, `DecideContext`), so deciding again after a conflict gives the same answer. The
 * platform's generic parts (entity actor, relay, read model, routes) run any registered decider:
 * adding an entity type is one file in domain/entities/ and one line in domain/entities/index.ts.
 */
import type { Result, Schema } from "effect"
import type { EntityRef } from "./children.ts"
import type { EntityRejection } from "./entity.ts"

/** What an accepted command did, as the command reply and HTTP status say it. */
export type Outcome = "created" | "updated" | "deleted"

/** A parent as the event store has it when a command naming it is decided. */
export interface ParentState extends EntityRef {
  readonly exists: boolean
}

/**
 * What the runtime adds to a command: which entity, and what it read of the entity's relatives in
 * the event store just before deciding (its append then checks they are still as read: domain/children.ts).
 */
export interface DecideContext {
  readonly entityType: string
  readonly entityId: string
  /** the parent the command would put the entity under (creating it there, or moving it): given when it does */
  readonly parent?: ParentState | undefined
  /** the entity's live children: given when the command would end the entity and its type has children */
  readonly children?: ReadonlyArray<EntityRef> | undefined
}

export interface Decider<Command extends { readonly _tag: string }, Event extends { readonly _tag: string }, State> {
  /** the entity type: subjects, stream names and routes use it (no "-" or "."). */
  readonly type: string
  /** how ids of this type are written (DESIGN.md: each type declares its id schema) */
  readonly id: Schema.Codec<string, unknown>
  /** the commands (tagged) the bus carries as the envelope's `action` */
  readonly command: Schema.Codec<Command, unknown>
  /** the events (tagged); stored as `type` = tag and `data` = the rest */
  readonly event: Schema.Codec<Event, unknown>
  /** the state, as kept snapshots store it */
  readonly state: Schema.Codec<State, unknown>
  readonly initialState: () => State
  /** The events a command causes (none when it changes nothing), or why not. */
  readonly decide: (command: Command, state: State, context: DecideContext) => Result.Result<ReadonlyArray<Event>, EntityRejection>
  readonly evolve: (state: State, event: Event) => State
  /** The state as snapshots and answers show it; null while the entity does not exist (not yet, or deleted). */
  readonly toJson: (state: State) => Schema.JsonObject | null
  /**
   * What a `service` key is shown of `toJson`'s answer by the generic entity routes: fields kept for
   * auditors left out. Default: all of it. (A profile's `sources`, the partner file line behind each
   * segment, are for auditors; a service key read them at `/v1/entities/userprofile/{id}`: stop 26's
   * outside attack.)
   */
  readonly serviceView?: (json: Schema.JsonObject) => Schema.JsonObject
  /**
   * Whether the entity exists in this state: `toJson(state) !== null` unless given. A fold asks it at every
   * event, so a type whose `toJson` is costly says it cheaply (a profile's sorts its segments).
   */
  readonly exists?: (state: State) => boolean
  /**
   * Events folded at once, as many `evolve`s would: for a type whose `evolve` copies a large state (a
   * profile's memberships), once for all. Only for a type that, once it exists, always exists (no deletion):
   * a fold then asks `exists` only until it does.
   */
  evolveMany?(state: State, events: ReadonlyArray<Event>): State
  /** Whether the entity was deleted (snapshots say `deleted: true`); default never. */
  readonly isDeleted?: (state: State) => boolean
  /** The outcome an event stands for; default "created" at revision 0, "updated" after. */
  readonly outcomes?: Partial<Record<Event["_tag"], Outcome>>
  /**
   * The rejection of a command whose If-Match revision is stale; default RevisionMismatch. (A record
   * answers "not found" to a patch of an entity that does not exist, whatever the revision.)
   */
  readonly staleRevision?: (command: Command, state: State, context: DecideContext) => EntityRejection | undefined
  /** keep a point-in-time snapshot every N revisions; default SNAPSHOT_EVERY */
  readonly snapshotEvery?: number
  /** whether states go to SNAPSHOTS; false for types with tens of millions of ids (history only) */
  readonly publishesSnapshots: boolean
  /** The type of this type's parent (a campaign's is advertiser); entities of that type then keep a children index. */
  readonly parentType?: string
  /**
   * The parent this state belongs to; none while the entity does not exist. The runtime reads the
   * parent a command's result belongs to (when it is a new one) for `decide`, and keeps the parents'
   * children indexes in line with it.
   */
  readonly parentOf?: (state: State) => EntityRef | undefined
  /**
   * How the runtime applies its commands: "actor" (default), one actor per entity; "batch", every
   * command of the type goes to its shard's one batch applier (actors/entity/ShardBatchApplier.ts),
   * which decides a bus batch in bus order and appends all its streams in one commit: for types with
   * millions of ids (DESIGN.md: the "high" volume class). A batch type has no parent nor children.
   */
  readonly applies?: "actor" | "batch"
  /** When the entity wants to be woken (epoch ms), as a `Wake` command (domain/wake.ts); none by default. */
  readonly wakeAt?: (state: State) => number | undefined
  /**
   * Commands only the platform sends, on the bus (a translator's, say), with why: the HTTP command route
   * refuses them (400 naming `_tag`), as it refuses `Wake`. A command whose fields vouch for where its data
   * came from belongs here: a key that may send commands must not be able to write that provenance.
   */
  readonly platformCommands?: Partial<Record<Command["_tag"], string>>
}

/** A decider of any commands, events and state: what the registry holds. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyDecider = Decider<any, any, any>

/** Declares a decider; the identity, there for type inference. */
export const decider = <C extends { readonly _tag: string }, E extends { readonly _tag: string }, S>(spec: Decider<C, E, S>): Decider<C, E, S> => spec
