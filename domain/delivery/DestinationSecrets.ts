/**
 * A destination's secret headers (credentials the partner's API wants), kept outside its entity
 * (DESIGN.md: secrets never enter history; the destination's history records only their names),
 * encrypted at rest because they must be sent on. Declared here; stored by infra/delivery/.
 */
import { Context, Schema } from "effect"
import type { Effect, Redacted } from "effect"
import type { CommandIdReused } from "../entity.ts"

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

/**
 * Secrets are given for an origin (the destination's URL's scheme, host and port when they were set) and
 * are sent to that origin only: whatever order two requests' writes and undos land in, a partner's
 * credentials never reach a server the destination was moved to (stop 28's outside attack: a PATCH
 * refused for a stale If-Match put back the secrets it had snapshot after another PATCH had moved the
 * URL to the attacker's server and dropped them; 16 races in 60 won, and the deliverer sent them there).
 * Secrets stored before stop 28 have no origin, and go wherever the URL is, until they are written again.
 */
/**
 * A write of a destination's secret headers: the names it has after it, the write's place in the store's
 * write sequence, and what it replaced, read in the same transaction (opaque: for `putBack` only).
 */
export interface SecretsWritten {
  readonly names: ReadonlyArray<string>
  readonly written: number
  readonly previous: SecretsBefore
  /** when it was written (ISO 8601): what the destination's history records of it */
  readonly at: string
  /** the request had written them already (SecretsRequest): nothing was written now, `names` and `at` are that write's */
  readonly replayed: boolean
  /** the request's answer, when it had one (`answered`): given again as it was, nothing sent */
  readonly answer?: string | undefined
}

/**
 * The request a write comes from, when it has an Idempotency-Key: its command id and a digest of the whole
 * request (what its command asks and the secrets it gives). The store remembers it with its write and,
 * once the request is answered, its answer (`answered`): the same request sent again writes nothing and
 * is given that answer without a command, and the same id with another request is refused
 * (CommandIdReused) — whatever came between: a restart, a delete of the destination, the entity
 * forgetting the command. Before (stop 32's outside attack and its re-attack), the store wrote before the
 * entity decided and the two remembered requests apart: a late retry wrote old secrets back over a
 * rotation, after a restart or a delete a retry stored its secrets unrecorded in history or applied its
 * other fields again over later changes.
 */
export interface SecretsRequest {
  readonly id: string
  readonly digest: string
}

/** What a write replaced, as stored (encrypted): put back as it was by `putBack`. */
export interface SecretsBefore {
  readonly rows: ReadonlyArray<unknown>
}

export class DestinationSecrets extends Context.Service<DestinationSecrets, {
  /** Replaces the destination's secret headers with these (none: removes them all), given for `origin`. */
  readonly put: (destination: string, headers: SecretHeaders, origin: string, request?: SecretsRequest) => Effect.Effect<SecretsWritten, SecretsError | CommandIdReused>
  /**
   * Sets the given headers, given for `origin`, and removes those given as null (a merge patch), and those
   * given for another origin; returns the names it has now.
   */
  readonly patch: (destination: string, changes: Readonly<Record<string, Redacted.Redacted<string> | null>>, origin: string, request?: SecretsRequest) => Effect.Effect<SecretsWritten, SecretsError | CommandIdReused>
  /**
   * Puts back what the write `written` replaced (a refused request's undo), unless the destination's
   * secrets were written since (another request's write): a request's undo never overwrites
   * another's write that came after its own (stop 29's re-attack: a refused PUT put back the value from
   * before a rotation that had answered 200, and the partner got the old credential for good). What it
   * replaced was read in the write's own transaction: read before it, a write of another process landing
   * between the read and the write was undone too (the second re-attack, 13 rounds of 100).
   */
  readonly putBack: (destination: string, written: SecretsWritten) => Effect.Effect<void, SecretsError>
  /**
   * The point of the write sequence up to which the DELETE `request` (its command id) drops the
   * destination's secrets: `now` the first time, and what it was then each time it is sent again, so a
   * DELETE sent again after the destination was created anew leaves the new one's secrets (stop 32's
   * second re-attack: they were dropped, history still naming them, and the partner got none).
   */
  readonly deleteBound: (destination: string, request: string, now: number) => Effect.Effect<number, SecretsError>
  /** Keeps the answer of the request `request` (a SecretsRequest's id), for when it is sent again. */
  readonly answered: (destination: string, request: string, answer: string) => Effect.Effect<void, SecretsError>
  /**
   * A digest of write-only fields holding secret values, keyed with the store's key (it tells nothing of
   * them without it): part of a command's fingerprint and of a SecretsRequest, so that one
   * Idempotency-Key with other secrets is another request (422), not a retry. Of their canonical form:
   * header names lower-cased (as stored) and keys sorted, so a retry whose client wrote them in another
   * order or case is the same request (before stop 32, 422).
   */
  readonly digest: (fields: unknown) => string
  /**
   * The destination's secret headers to send to `origin`, decrypted: those given for it, and those stored
   * without one (none: an empty record).
   */
  readonly get: (destination: string, origin: string) => Effect.Effect<SecretHeaders, SecretsError | SecretsUndecryptable>
  /**
   * All of the destination's secret headers, whatever origin they were given for, and that origin (none:
   * no secrets, or stored without one), read together: what an operator or a test inspects. The deliverer
   * reads `get`, a refused request's undo what its own write replaced (`SecretsWritten.previous`).
   */
  readonly held: (destination: string) => Effect.Effect<{ readonly headers: SecretHeaders; readonly origin: string | undefined }, SecretsError | SecretsUndecryptable>
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
