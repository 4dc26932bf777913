/**
 * Authentication by API key (`Authorization: Bearer <key>`) and the role gate of a route. The admin
 * key from ADMIN_API_KEY is always an admin; other keys come from the ApiKeys store. What a scoped
 * key may do within its role is decided per request by api/authorization.ts.
 */
import { timingSafeEqual } from "node:crypto"
import { Context, Effect, Option, Redacted } from "effect"
import { ApiKeys, parseRole, type Role, type RoleKind } from "../domain/ApiKeys.ts"
import { Forbidden, Unauthorized } from "./problems.ts"

export interface Principal {
  readonly id: string
  readonly role: Role | "public"
}

/** The bootstrap admin key (ADMIN_API_KEY); none disables it, and so does the key store once told to (api/routes/bootstrapKey.ts). */
export class AdminApiKey extends Context.Service<AdminApiKey, Option.Option<Redacted.Redacted<string>>>()("tributary/AdminApiKey") {}

const sameSecret = (a: string, b: string) => {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

export const authenticate = (authorization: string | undefined) =>
  Effect.gen(function*() {
    const match = authorization === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(authorization)
    if (match === null) return yield* new Unauthorized({ detail: "send Authorization: Bearer <api key>" })
    const secret = match[1]!
    const admin = yield* Effect.serviceOption(AdminApiKey).pipe(Effect.map(Option.flatten))
    const keys = yield* ApiKeys
    if (Option.isSome(admin) && sameSecret(Redacted.value(admin.value), secret)) {
      if (Option.isSome(yield* keys.bootstrap.disabledAt)) return yield* new Unauthorized({ detail: "the bootstrap admin key (ADMIN_API_KEY) is disabled: use an admin key" })
      return { id: "admin", role: "admin" } satisfies Principal
    }
    const key = yield* keys.authenticate(secret)
    if (Option.isNone(key)) return yield* new Unauthorized({ detail: "unknown or revoked API key" })
    return { id: key.value.id, role: key.value.role } satisfies Principal
  })

/** A route's allowed role: an exact role (`service`, `partner:acme`) or a kind of scoped role (`partner`: any partner's key). */
export type RouteRole = Role | RoleKind

/** Kinds whose keys are scoped: a route that lets them in must also say, by its `authorize`, to what. */
export const scopedKinds: ReadonlyArray<RoleKind> = ["partner", "app", "producer"]

/** Admin may do everything; others only what the route lists. */
export const authorize = (principal: Principal, roles: ReadonlyArray<RouteRole>) =>
  principal.role === "admin" || roles.includes(principal.role) || (principal.role !== "public" && roles.includes(parseRole(principal.role).kind))
    ? Effect.void
    : Effect.fail(new Forbidden({ detail: `role ${principal.role} may not do this; allowed: ${["admin", ...roles.filter((role) => role !== "admin")].join(", ")}` }))
