/**
 * Kept snapshots, for writers: where an entity actor starts folding instead of revision 0. A kept
 * snapshot at revision r is immutable truth (the store's history up to r never changes), so folding
 * r+1.. from the store is exact even when the read model that keeps them lags behind.
 * Declared here; kept by the entity read model (infra/readmodel/sqlite.ts).
 */
import { Context, Schema } from "effect"
import type { Effect, Option } from "effect"
import type { KeptSnapshot } from "./snapshot.ts"

export class KeptSnapshotsError extends Schema.TaggedError<KeptSnapshotsError>()("KeptSnapshotsError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {}

export class KeptSnapshots extends Context.Service<KeptSnapshots, {
  /** The newest kept snapshot of the entity at or before `revision` (the newest of all when absent). */
  readonly atOrBefore: (type: string, id: string, revision?: number) => Effect.Effect<Option.Option<KeptSnapshot>, KeptSnapshotsError>
}>()("tributary/KeptSnapshots") {}
