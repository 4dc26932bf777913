/**
 * A partner's FTP/SFTP login, kept outside its entity (DESIGN.md: secrets never enter history; the
 * partner's history records only that they changed). The password is stored as a salted hash
 * (scrypt); SSH public keys as the partner gave them (OpenSSH `authorized_keys` lines).
 * Declared here; stored by infra/ingest/ (SQLite under DATA_DIR).
 */
import { Context, Schema } from "effect"
import type { Effect, Redacted } from "effect"

export class CredentialsError extends Schema.TaggedError<CredentialsError>()("CredentialsError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {}

/** Which credentials a partner has, never their values. */
export const CredentialsSummary = Schema.Struct({
  partner: Schema.String,
  password: Schema.Boolean,
  sshPublicKeys: Schema.Int,
  updatedAt: Schema.optionalKey(Schema.String)
})
export type CredentialsSummary = typeof CredentialsSummary.Type

export class PartnerCredentials extends Context.Service<PartnerCredentials, {
  /** Replaces what is given: a password (hashed here), and/or the SSH public keys (an empty list removes them). */
  readonly set: (partner: string, change: {
    readonly password?: Redacted.Redacted<string> | undefined
    readonly sshPublicKeys?: ReadonlyArray<string> | undefined
  }) => Effect.Effect<CredentialsSummary, CredentialsError>
  readonly summary: (partner: string) => Effect.Effect<CredentialsSummary, CredentialsError>
  /** Whether this password is the partner's (constant time); false when it has none. */
  readonly verifyPassword: (partner: string, password: Redacted.Redacted<string>) => Effect.Effect<boolean, CredentialsError>
  /** The partner's SSH public keys, as OpenSSH lines. */
  readonly sshPublicKeys: (partner: string) => Effect.Effect<ReadonlyArray<string>, CredentialsError>
  /** Forgets them all (the partner was deleted): a partner created again under its id starts with none. */
  readonly remove: (partner: string) => Effect.Effect<void, CredentialsError>
}>()("tributary/PartnerCredentials") {}
