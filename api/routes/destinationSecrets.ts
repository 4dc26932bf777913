/**
 * A destination's secret headers through its entity routes (`PUT`/`PATCH /v1/entities/destination/{id}`,
 * field `secretHeaders`, write-only): split off the body, encrypted into DestinationSecrets BEFORE the
 * command — so the deliverer never sees a new destination without its credentials — and the entity
 * is then told their names (`RecordSecretsChange`). Should the command be refused after that, the
 * secrets stay stored: sending the request again converges. The PUT also checks that the partner
 * exists, to answer 400 naming `partnerId` (the entity checks it again, atomically, at its append).
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
        return yield* Effect.flatMap(secrets.put(id, redact(headers) as Record<string, Redacted.Redacted<string>>), recordChange)
      }
      const patch = validate(SecretHeadersPatch, writeOnly["secretHeaders"])
      if (Result.isFailure(patch)) return yield* invalid(patch.failure.map((issue) => ({ ...issue, path: ["secretHeaders", ...issue.path] })))
      const issues = headerIssues(patch.success ?? {}, "secretHeaders", { secrets: "allow" })
      if (issues.length > 0) return yield* invalid(issues.map((i) => ({ path: i.path, message: i.issue })))
      // a patch of a destination that does not exist stores nothing: its Patch answers 404
      if (!(yield* exists(id))) return undefined
      const names = patch.success === null
        ? yield* Effect.as(secrets.remove(id), [])
        : yield* secrets.patch(id, redact(patch.success))
      return yield* recordChange(names)
    })
} satisfies WriteOnlyFields<unknown, unknown>
