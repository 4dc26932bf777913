/**
 * A destination as the deliverer needs it: its config (from its entity, read from the event store,
 * so never older than an acknowledged change) and its secret headers, decrypted. Read when its
 * DeliveryActor starts and again when its entity changes.
 */
import { Effect, Option, Redacted } from "effect"
import { type DestinationConfig, destinationConfigOf } from "../../domain/delivery/DestinationConfig.ts"
import { DestinationSecrets, type SecretHeaders } from "../../domain/delivery/DestinationSecrets.ts"
import { destination } from "../../domain/entities/destination.ts"
import { getEntity } from "../../projections/EntityQueries.ts"

export interface LoadedDestination {
  readonly config: DestinationConfig
  /** lower-case names; Redacted so a log of this record shows no value */
  readonly secretHeaders: SecretHeaders
}

/** The destination's config and secrets; none when it does not exist (or was deleted). */
export const loadDestination = (id: string) =>
  Effect.gen(function*() {
    const config = Option.flatMap(yield* getEntity(destination.type, id), (snapshot) => destinationConfigOf(id, snapshot.state))
    if (Option.isNone(config)) return Option.none<LoadedDestination>()
    const secretHeaders = yield* (yield* DestinationSecrets).get(id)
    return Option.some<LoadedDestination>({ config: config.value, secretHeaders })
  })

/** Every header of a request to the destination: the plain ones, then the secret ones (which win). */
export const requestHeaders = (loaded: LoadedDestination): Record<string, string> => ({
  ...loaded.config.headers,
  ...Object.fromEntries(Object.entries(loaded.secretHeaders).map(([name, value]) => [name, Redacted.value(value)]))
})
