/**
 * API keys and their roles (DESIGN.md, Auth). A key's secret is shown once, at creation; only its
 * hash is kept. Declared here; stored by infra/apiKeys/sqlite.ts.
 */
import { Context, Schema } from "effect"
import type { Effect, Option } from "effect"
import { Uint64String } from "./ids.ts"

/** admin: everything · service: commands and queries · auditor: history and point-in-time reads ·
 * partner:<id>: ingest for that partner · app:<id>: an SDK sending that app's events ·
 * producer:<topics>: firehose publish on those topics (comma-separated NATS-style patterns: `*` one token, `>` the rest) */
export const Role = Schema.String.check(
  Schema.isPattern(/^(admin|service|auditor|partner:[a-z0-9][a-z0-9_-]*|app:[a-z0-9][a-z0-9_-]*|producer:[a-z0-9_.*>,-]+)$/, {
    description: "admin | service | auditor | partner:<id> | app:<id> | producer:<topics>"
  })
).annotate({ identifier: "Role", examples: ["service"] })
export type Role = typeof Role.Type

/**
 * A role a new key may be given: an `app:<id>` names an app as apps are named (a 64-bit decimal id in its
 * one spelling), since a key for `app:07001` or past 2^64 could never act (stop 32's outside attack).
 * Keys stored before keep the role they have (Role).
 */
const isAppId = Schema.is(Uint64String)
export const NewRole = Role.check(Schema.makeFilter((role: string) =>
  !role.startsWith("app:") || isAppId(role.slice(4)) || "an app role names a 64-bit decimal app id (app:<id>, no leading zeros)"))

/** What a role is, without what it is scoped to: `partner:acme` is a `partner`. */
export type RoleKind = "admin" | "service" | "auditor" | "partner" | "app" | "producer"

/** The kind of a role and its scope (a partner id, an app id, topic patterns), if it has one. */
export const parseRole = (role: Role): { readonly kind: RoleKind; readonly scope?: string } => {
  const colon = role.indexOf(":")
  return colon < 0 ? { kind: role as RoleKind } : { kind: role.slice(0, colon) as RoleKind, scope: role.slice(colon + 1) }
}

export const ApiKey = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  role: Role,
  createdAt: Schema.String
}).annotate({ identifier: "ApiKey" })
export type ApiKey = typeof ApiKey.Type

export class ApiKeysError extends Schema.TaggedError<ApiKeysError>()("ApiKeysError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {}

/** What was asked would leave no admin key to use: the bootstrap key disabled and no other live admin key. */
export class LastAdminKey extends Schema.TaggedError<LastAdminKey>()("LastAdminKey", { detail: Schema.String }) {}

export class ApiKeys extends Context.Service<ApiKeys, {
  /** The key a secret belongs to, unless unknown or revoked. */
  readonly authenticate: (secret: string) => Effect.Effect<Option.Option<ApiKey>, ApiKeysError>
  /** A new key; the secret is returned here only. */
  readonly create: (input: { readonly name: string; readonly role: Role }) => Effect.Effect<{ readonly key: ApiKey; readonly secret: string }, ApiKeysError>
  readonly list: Effect.Effect<ReadonlyArray<ApiKey>, ApiKeysError>
  /** true when a live key was revoked; the last live admin key is kept while the bootstrap key is disabled */
  readonly revoke: (id: string) => Effect.Effect<boolean, ApiKeysError | LastAdminKey>
  /**
   * The bootstrap key (ADMIN_API_KEY) is disabled for good, for every process on this store, once
   * another admin key exists; stored, so a restart with the same setting does not bring it back.
   */
  readonly bootstrap: {
    /** when it was disabled, if it was */
    readonly disabledAt: Effect.Effect<Option.Option<string>, ApiKeysError>
    /** disables it (again: answers the first time); LastAdminKey unless a live admin key exists */
    readonly disable: Effect.Effect<string, ApiKeysError | LastAdminKey>
  }
}>()("tributary/ApiKeys") {}
