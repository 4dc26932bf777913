/**
 * A destination as the deliverer needs it: its config and incarnation (from its entity, read from the
 * event store, so never older than an acknowledged change) and its secret headers, decrypted. Read
 * when its DeliveryActor starts and again when its entity changes.
 */
import { Effect, Option, Redacted } from "effect"
import { DestinationSecrets, type SecretHeaders } from "../../domain/delivery/DestinationSecrets.ts"
import { type CurrentDestination, currentDestination } from "../../projections/delivery/currentDestination.ts"
import type { Life } from "../../projections/EntityQueries.ts"

export interface LoadedDestination extends CurrentDestination {
  /** lower-case names; Redacted so a log of this record shows no value */
  readonly secretHeaders: SecretHeaders
}

/** The destination's config, incarnation and secrets; none when it does not exist (or was deleted). `known`: as currentDestination. */
export const loadDestination = (id: string, known?: Life) =>
  Effect.gen(function*() {
    const current = yield* currentDestination(id, known)
    if (Option.isNone(current)) return Option.none<LoadedDestination>()
    // only those given for the URL's origin: never a partner's credentials to where the URL was moved
    const secretHeaders = yield* (yield* DestinationSecrets).get(id, new URL(current.value.config.url).origin)
    return Option.some<LoadedDestination>({ ...current.value, secretHeaders })
  })

/** Every header of a request to the destination: the plain ones, then the secret ones (which win). */
export const requestHeaders = (loaded: LoadedDestination): Record<string, string> => ({
  ...loaded.config.headers,
  ...Object.fromEntries(Object.entries(loaded.secretHeaders).map(([name, value]) => [name, Redacted.value(value)]))
})
