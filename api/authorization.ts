/**
 * Authorization as a predicate over the principal (the API key) and the decoded request (DESIGN.md,
 * Auth). A route's `roles` say who may call it at all; its `authorize` then decides on this very
 * request: a `partner:<id>` key acts only for its own partner, an `app:<id>` key only for its own app,
 * a `producer:<topics>` key only on topics its patterns match. A denial names why (403 problem+json).
 */
import { Effect } from "effect"
import { parseRole } from "../domain/ApiKeys.ts"
import type { Principal } from "./auth.ts"
import { Forbidden } from "./problems.ts"

/** A refusal and its reason, which the 403 answer carries. */
export interface Denied {
  readonly denied: string
}

/** true: allowed · false: denied (a generic reason) · Denied: denied for this reason */
export type Decision = boolean | Denied

export const deny = (reason: string): Denied => ({ denied: reason })

/** What a predicate sees: the key and every decoded part of the request. */
export interface AuthorizationInput<P, Q, H, B> {
  readonly principal: Principal
  readonly params: P
  readonly query: Q
  readonly headers: H
  readonly body: B
}

export type Authorize<I, E = never, R = never> = (input: I) => Decision | Effect.Effect<Decision, E, R>

/** Runs a route's predicate: Forbidden unless it allows. */
export const check = <I, E, R>(authorize: Authorize<I, E, R>, input: I): Effect.Effect<void, E | Forbidden, R> => {
  const decided = authorize(input)
  return Effect.flatMap(Effect.isEffect(decided) ? decided : Effect.succeed(decided), (decision) =>
    decision === true
      ? Effect.void
      : Effect.fail(new Forbidden({ detail: decision === false ? "this API key may not act on this request" : decision.denied })))
}

/**
 * A key scoped to one `kind` (partner, app) may act only for its own id; keys of other roles are left
 * to the route's `roles`.
 */
const scopedTo = (kind: "partner" | "app") => (principal: Principal, id: string): Decision => {
  if (principal.role === "public") return deny("an API key is required")
  const { kind: principalKind, scope } = parseRole(principal.role)
  if (principalKind !== kind) return true
  return scope === id ? true : deny(`a ${kind}:${scope} key may act only for ${kind} ${scope}, not for ${kind} ${id}`)
}

/** `partner:<id>` keys only for their own partner: `authorize: ({ principal, params }) => forPartner(principal, params.partner)` */
export const forPartner = scopedTo("partner")

/** `app:<id>` keys only for their own app. */
export const forApp = scopedTo("app")

/**
 * Whether a NATS-style topic pattern matches a topic: tokens split on `.`, `*` matches exactly one
 * token, `>` (last) matches one or more remaining tokens.
 */
export const topicMatches = (pattern: string, topic: string): boolean => {
  const want = pattern.split(".")
  const have = topic.split(".")
  for (let i = 0; i < want.length; i++) {
    const token = want[i]!
    if (token === ">") return i === want.length - 1 && have.length > i
    if (i >= have.length) return false
    if (token !== "*" && token !== have[i]) return false
  }
  return want.length === have.length
}

/** `producer:<patterns>` keys only on a topic one of their comma-separated patterns matches. */
export const forTopic = (principal: Principal, topic: string): Decision => {
  if (principal.role === "public") return deny("an API key is required")
  const { kind, scope } = parseRole(principal.role)
  if (kind !== "producer") return true
  const patterns = (scope ?? "").split(",")
  return patterns.some((pattern) => topicMatches(pattern, topic))
    ? true
    : deny(`a producer key for ${patterns.join(", ")} may not publish on topic ${topic}`)
}
