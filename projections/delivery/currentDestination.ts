/**
 * A destination as it is now, read from the event store (never older than an acknowledged change):
 * its config with every default applied, and which life of its id this is. The deliverer delivers
 * for that incarnation only, and the dead-letter routes show and replay only its dead letters.
 */
import { Effect, Option } from "effect"
import { type DestinationConfig, destinationConfigOf } from "../../domain/delivery/DestinationConfig.ts"
import { destination } from "../../domain/entities/destination.ts"
import { getEntity, type Life, lifeStartRevision } from "../EntityQueries.ts"

export interface CurrentDestination {
  readonly config: DestinationConfig
  /** which life of the id this is (domain/delivery/Incarnation.ts) */
  readonly incarnation: number
  /** the revision it was read at: with `incarnation`, what a reader passes back as `known` to read it again cheaply */
  readonly life: Life
}

/**
 * None when the destination does not exist (never created, or deleted). `known`: what an earlier read
 * answered, so that the incarnation is looked for in the events since only (a reader every few seconds
 * does not read back through a long history each time).
 */
export const currentDestination = (id: string, known?: Life) =>
  Effect.gen(function*() {
    const entity = yield* getEntity(destination.type, id)
    const config = Option.flatMap(entity, (snapshot) => destinationConfigOf(id, snapshot.state))
    if (Option.isNone(entity) || Option.isNone(config)) return Option.none<CurrentDestination>()
    const revision = entity.value.revision
    const incarnation = Option.getOrElse(yield* lifeStartRevision(destination.type, id, revision, known), () => 0)
    return Option.some<CurrentDestination>({ config: config.value, incarnation, life: { revision, start: incarnation } })
  })
