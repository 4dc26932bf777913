/**
 * A destination's secret headers through its entity routes (`PUT`/`PATCH /v1/entities/destination/{id}`,
 * field `secretHeaders`, write-only): split off the body, encrypted into DestinationSecrets BEFORE the
 * command — so the deliverer never sees a new destination without its credentials — and the entity
 * is then told their names (`RecordSecretsChange`). Should the entity refuse the command after that
 * (a stale If-Match, invalid fields), the secrets are put back as they were: a refused request changes
 * nothing. Should its outcome be unknown (a timeout), they stay: sending the request again converges.
 * The PUT also checks that the partner exists, to answer 400 naming `partnerId` (the entity checks it
 * again, atomically, at its append).
 */
import { Clock, Effect, Option, Redacted, Result, Schema } from "effect"
import { DestinationSecrets } from "../../domain/delivery/DestinationSecrets.ts"
import { destination, DestinationPut } from "../../domain/entities/destination.ts"
import { HeaderName, HeaderValue, headerIssues } from "../../domain/entities/headers.ts"
import { validate } from "../../domain/validation.ts"
import { getEntity } from "../../projections/EntityQueries.ts"
import { InvalidRequest } from "../problems.ts"
import type { WriteOnlyFields } from "./entities.ts"

/** PATCH: `secretHeaders: null` removes them all, `{name: null}` one of them. */
const SecretHeadersPatch = Schema.NullOr(Schema.Record(HeaderName, Schema.NullOr(HeaderValue)))

const invalid = (issues: ReadonlyArray<{ readonly path: ReadonlyArray<string | number>; readonly message: string }>) =>
  new InvalidRequest({ issues: issues.map((issue) => ({ in: "body" as const, ...issue })) })

/** The partner a destination names must exist: 400 naming `partnerId` otherwise. */
const checkPartner = (partnerId: unknown) =>
  typeof partnerId !== "string"
    ? Effect.void
    : Effect.flatMap(getEntity("partner", partnerId), (found) =>
      Option.isSome(found) ? Effect.void : Effect.fail(invalid([{ path: ["partnerId"], message: `partner ${partnerId} does not exist` }])))

const exists = (id: string) =>
  Effect.flatMap(getEntity(destination.type, id), (found) => Effect.succeed(Option.isSome(found)))

const redact = (headers: Readonly<Record<string, string | null>>) =>
  Object.fromEntries(Object.entries(headers).map(([name, value]) => [name, value === null ? null : Redacted.make(value)]))

const recordChange = (names: ReadonlyArray<string>) =>
  Effect.map(Clock.currentTimeMillis, (now): Schema.Json => ({ _tag: "RecordSecretsChange", headerNames: [...names], at: new Date(now).toISOString() }))

/**
 * The destination's secret headers as they are now, and how to put them back: run when the entity
 * refuses the command (a stale If-Match, invalid fields), so that a refused request changes nothing.
 * Secrets that cannot be decrypted (a changed key) cannot be put back: they are left as the request set them.
 */
const snapshot = (id: string) =>
  Effect.gen(function*() {
    const secrets = yield* DestinationSecrets
    const before = yield* Effect.result(secrets.get(id))
    if (Result.isFailure(before)) return Effect.void
    const previous = before.success
    return Object.keys(previous).length === 0
      ? Effect.ignore(secrets.remove(id))
      : Effect.ignore(secrets.put(id, previous))
  })

export const destinationWriteOnly = {
  putBody: DestinationPut,
  names: ["secretHeaders"],
  store: ({ id, method, writeOnly, rest }) =>
    Effect.gen(function*() {
      yield* checkPartner(rest["partnerId"])
      if (!Object.hasOwn(writeOnly, "secretHeaders")) return undefined
      const secrets = yield* DestinationSecrets
      if (method === "PUT") {
        // decoded by the route with DestinationPut
        const headers = writeOnly["secretHeaders"] as Readonly<Record<string, string>>
        const undo = yield* snapshot(id)
        const after = yield* Effect.flatMap(secrets.put(id, redact(headers) as Record<string, Redacted.Redacted<string>>), recordChange)
        return { after, undo }
      }
      const patch = validate(SecretHeadersPatch, writeOnly["secretHeaders"])
      if (Result.isFailure(patch)) return yield* invalid(patch.failure.map((issue) => ({ ...issue, path: ["secretHeaders", ...issue.path] })))
      const issues = headerIssues(patch.success ?? {}, "secretHeaders", { secrets: "allow" })
      if (issues.length > 0) return yield* invalid(issues.map((i) => ({ path: i.path, message: i.issue })))
      // a patch of a destination that does not exist stores nothing: its Patch answers 404
      if (!(yield* exists(id))) return undefined
      const undo = yield* snapshot(id)
      const names = patch.success === null
        ? yield* Effect.as(secrets.remove(id), [])
        : yield* secrets.patch(id, redact(patch.success))
      return { after: yield* recordChange(names), undo }
    })
} satisfies WriteOnlyFields<unknown, unknown>
