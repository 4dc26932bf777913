/**
 * A destination as it is now, read from the event store (never older than an acknowledged change):
 * its config with every default applied, and which life of its id this is. The deliverer delivers
 * for that incarnation only, and the dead-letter routes show and replay only its dead letters.
 */
import { Effect, Option } from "effect"
import { type DestinationConfig, destinationConfigOf } from "../../domain/delivery/DestinationConfig.ts"
import { destination } from "../../domain/entities/destination.ts"
import { getEntity, lifeStartRevision } from "../EntityQueries.ts"

export interface CurrentDestination {
  readonly config: DestinationConfig
  /** which life of the id this is (domain/delivery/Incarnation.ts) */
  readonly incarnation: number
}

/** None when the destination does not exist (never created, or deleted). */
export const currentDestination = (id: string) =>
  Effect.gen(function*() {
    const entity = yield* getEntity(destination.type, id)
    const config = Option.flatMap(entity, (snapshot) => destinationConfigOf(id, snapshot.state))
    if (Option.isNone(entity) || Option.isNone(config)) return Option.none<CurrentDestination>()
    const incarnation = yield* lifeStartRevision(destination.type, id, entity.value.revision)
    return Option.some<CurrentDestination>({ config: config.value, incarnation: Option.getOrElse(incarnation, () => 0) })
  })
