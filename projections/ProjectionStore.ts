/**
 * Where projections live: it holds the declared projections' storage and each one's checkpoint (the
 * global position applied last), written in the same transaction as the projection's rows, so a
 * restart neither skips nor applies an event twice. Declared here; SQLite in infra/readmodel/sqlite.ts.
 */
import { Context } from "effect"
import type { Effect } from "effect"
import type { EventEnvelope } from "../domain/envelope.ts"
import type { ReadModelError } from "./ReadModelError.ts"

export class ProjectionStore extends Context.Service<ProjectionStore, {
  /** the projections this store holds, by name */
  readonly names: ReadonlyArray<string>
  /** Position of the last event a projection applied; undefined when none. */
  readonly checkpoint: (name: string) => Effect.Effect<number | undefined, ReadModelError>
  /** Forgets everything of a projection, checkpoint included (before a rebuild), in one transaction. */
  readonly reset: (name: string) => Effect.Effect<void, ReadModelError>
  /**
   * Applies the events the projection handles and sets its checkpoint to `position` (the last event
   * read, handled or not), in one transaction. Answers the event types it skipped.
   */
  readonly apply: (name: string, events: ReadonlyArray<EventEnvelope>, position: number) => Effect.Effect<ReadonlyArray<string>, ReadModelError>
}>()("tributary/ProjectionStore") {}
