/**
 * The lanes of every live destination, as the entity read model lists them (paged): what the
 * deliverers run, and what DELIVERY_MAX_LANES bounds. The list follows the event store a moment
 * behind an acknowledged change.
 */
import { Effect, Option } from "effect"
import { destinationConfigOf } from "../../domain/delivery/DestinationConfig.ts"
import { destination } from "../../domain/entities/destination.ts"
import { type EntityPage, EntityReadModel } from "../EntityReadModel.ts"

/** destination id → its `lanes` (defaults applied) */
export const lanesByDestination = Effect.gen(function*() {
  const model = yield* EntityReadModel
  const lanes = new Map<string, number>()
  let after: string | undefined = undefined
  for (;;) {
    const page: EntityPage = yield* model.list(destination.type, { limit: 500, ...(after === undefined ? {} : { after }) })
    for (const item of page.items) {
      const config = destinationConfigOf(item.id, item.state)
      if (Option.isSome(config)) lanes.set(item.id, config.value.lanes)
    }
    if (!page.more || page.items.length === 0) return lanes as ReadonlyMap<string, number>
    after = page.items.at(-1)!.id
  }
})
