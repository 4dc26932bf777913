/**
 * A projection declared as data (Emmett): a name, how its storage starts (`init`), which events it
 * handles, and how a batch of them changes it (`evolve`). One generic runner (ProjectionRunner.ts)
 * feeds every projection from the event store's global order, and the store it lives in
 * (ProjectionStore) runs `evolve` and the projection's checkpoint in one transaction. `Tx` is that
 * store's transaction handle (a SQLite database for the read models of infra/readmodel/), so a
 * projection's SQL stays in infra/. `evolve` must not read the clock: a rebuild gives the same rows.
 */
import type { EventEnvelope } from "../domain/envelope.ts"

export interface Projection<Tx> {
  /** stable: the checkpoint, the rebuild route (`/v1/admin/projections/{name}/rebuild`) and metrics use it */
  readonly name: string
  /** Creates the projection's storage where missing; with `rebuild`, forgets all it holds first. */
  readonly init: (tx: Tx, options: { readonly rebuild: boolean }) => void
  /** Whether the projection looks at an event at all (others only advance its checkpoint). */
  readonly canHandle: (event: EventEnvelope) => boolean
  /**
   * Applies handled events, in global order, inside the store's transaction. Returns the event types
   * it had to skip (written by a newer version of the code), to count and log.
   */
  readonly evolve: (tx: Tx, events: ReadonlyArray<EventEnvelope>) => { readonly skipped: ReadonlyArray<string> }
}
