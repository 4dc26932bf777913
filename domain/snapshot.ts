/**
 * An entity's state at a revision, as published on SNAPSHOTS (`snapshot.<type>.<id>`, latest only),
 * kept by the read model, and answered by the API.
 */
import { Schema } from "effect"
import type { EntityState } from "./entity.ts"

export const EntitySnapshot = Schema.Struct({
  type: Schema.String,
  id: Schema.String,
  revision: Schema.Int,
  /** global position of the event that produced this state */
  position: Schema.Int,
  deleted: Schema.Boolean,
  /** the entity's fields; null once deleted */
  state: Schema.NullOr(Schema.Record(Schema.String, Schema.Json)),
  createdAt: Schema.NullOr(Schema.String),
  updatedAt: Schema.NullOr(Schema.String)
}).annotate({ identifier: "EntitySnapshot" })
export type EntitySnapshot = typeof EntitySnapshot.Type

export const toSnapshot = (type: string, id: string, state: EntityState, position: number): EntitySnapshot => ({
  type,
  id,
  revision: state.revision,
  position,
  deleted: state.status === "deleted",
  state: state.status === "live" ? state.fields : null,
  createdAt: state.createdAt,
  updatedAt: state.updatedAt
})

/** The decider's state back from a snapshot, to go on folding from it. */
export const fromSnapshot = (snapshot: EntitySnapshot): EntityState => ({
  status: snapshot.deleted ? "deleted" : "live",
  revision: snapshot.revision,
  fields: snapshot.state,
  createdAt: snapshot.createdAt,
  updatedAt: snapshot.updatedAt
})
