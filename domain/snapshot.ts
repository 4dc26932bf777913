/**
 * An entity's state at a revision, as published on SNAPSHOTS (`snapshot.<type>.<id>`, latest only),
 * kept by the read model, and answered by the API.
 */
import { Schema } from "effect"

export const EntitySnapshot = Schema.Struct({
  type: Schema.String,
  id: Schema.String,
  revision: Schema.Int,
  /** global position of the event that produced this state */
  position: Schema.Int,
  deleted: Schema.Boolean,
  /** the entity's state as its decider shows it (a record's fields); null while it does not exist */
  state: Schema.NullOr(Schema.Record(Schema.String, Schema.Json)),
  createdAt: Schema.NullOr(Schema.String),
  updatedAt: Schema.NullOr(Schema.String)
}).annotate({ identifier: "EntitySnapshot" })
export type EntitySnapshot = typeof EntitySnapshot.Type

/**
 * A snapshot the read model keeps (every `snapshotEvery` revisions, and the current row), with the
 * decider's own state encoded in `data`: folding goes on from it, since `state` is only its public view.
 * A kept snapshot at revision r is immutable truth: the events after r complete it whatever lags.
 */
export const KeptSnapshot = Schema.Struct({ ...EntitySnapshot.fields, data: Schema.Json })
export type KeptSnapshot = typeof KeptSnapshot.Type
