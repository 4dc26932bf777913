/**
 * Authentication by API key (`Authorization: Bearer <key>`) and authorization by role. The admin key
 * from ADMIN_API_KEY is always an admin; other keys come from the ApiKeys store.
 */
import { timingSafeEqual } from "node:crypto"
import { Context, Effect, Option, Redacted } from "effect"
import { ApiKeys, type Role } from "../domain/ApiKeys.ts"
import { Forbidden, Unauthorized } from "./problems.ts"

export interface Principal {
  readonly id: string
  readonly role: Role | "public"
}

/** The bootstrap admin key (ADMIN_API_KEY); none disables it. */
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
    if (Option.isSome(admin) && sameSecret(Redacted.value(admin.value), secret)) return { id: "admin", role: "admin" } satisfies Principal
    const keys = yield* ApiKeys
    const key = yield* keys.authenticate(secret)
    if (Option.isNone(key)) return yield* new Unauthorized({ detail: "unknown or revoked API key" })
    return { id: key.value.id, role: key.value.role } satisfies Principal
  })

/** Admin may do everything; others only what the route lists. */
export const authorize = (principal: Principal, roles: ReadonlyArray<Role>) =>
  principal.role === "admin" || roles.includes(principal.role)
    ? Effect.void
    : Effect.fail(new Forbidden({ detail: `role ${principal.role} may not do this; allowed: admin, ${roles.join(", ")}` }))
