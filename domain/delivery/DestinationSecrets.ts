/**
 * A destination's secret headers (credentials the partner's API wants), kept outside its entity
 * (DESIGN.md: secrets never enter history; the destination's history records only their names),
 * encrypted at rest because they must be sent on. Declared here; stored by infra/delivery/.
 */
import { Context, Schema } from "effect"
import type { Effect, Redacted } from "effect"

export class SecretsError extends Schema.TaggedError<SecretsError>()("SecretsError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {}

/** A stored value does not decrypt with the configured key (another key, or tampered): never sent as garbage. */
export class SecretsUndecryptable extends Schema.TaggedError<SecretsUndecryptable>()("SecretsUndecryptable", {
  destination: Schema.String,
  header: Schema.String
}) {}

/** Header name (lower-case) → value. */
export type SecretHeaders = Readonly<Record<string, Redacted.Redacted<string>>>

export class DestinationSecrets extends Context.Service<DestinationSecrets, {
  /** Replaces the destination's secret headers with these; returns the names it has now. */
  readonly put: (destination: string, headers: SecretHeaders) => Effect.Effect<ReadonlyArray<string>, SecretsError>
  /** Sets the given headers and removes those given as null (a merge patch); returns the names it has now. */
  readonly patch: (destination: string, changes: Readonly<Record<string, Redacted.Redacted<string> | null>>) => Effect.Effect<ReadonlyArray<string>, SecretsError>
  /** The destination's secret headers, decrypted (none: an empty record). */
  readonly get: (destination: string) => Effect.Effect<SecretHeaders, SecretsError | SecretsUndecryptable>
  /** Which secret headers it has (never values), sorted. */
  readonly names: (destination: string) => Effect.Effect<ReadonlyArray<string>, SecretsError>
  /**
   * Removes the destination's secret headers; with `writtenUpTo`, only those written at or before that
   * point of the store's write sequence (`sequence`), not one written since (a destination created
   * again under the id while its predecessor's delete was still dropping them).
   */
  readonly remove: (destination: string, writtenUpTo?: number) => Effect.Effect<void, SecretsError>
  /** The store's write sequence now: every later write is stamped higher. */
  readonly sequence: Effect.Effect<number, SecretsError>
}>()("tributary/DestinationSecrets") {}
