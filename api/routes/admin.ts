/** Administration: API keys, read-model rebuilds and the dead letters (admin only). */
import { Effect, Schema } from "effect"
import { ApiKey, ApiKeys, NewRole } from "../../domain/ApiKeys.ts"
import { DeadLetterPage, DeadLetters } from "../../domain/DeadLetters.ts"
import { Projections } from "../../projections/ProjectionRunner.ts"
import { NotFound, problemResponse } from "../problems.ts"
import { route } from "../route.ts"
import { readBoundedPage } from "./boundedPage.ts"
import { Limit, NonNegativeIntFromString } from "./params.ts"

const CreatedKey = Schema.Struct({ key: ApiKey, secret: Schema.String }).annotate({ identifier: "CreatedApiKey" })

export const adminRoutes = [
  route({
    method: "POST", url: "/v1/admin/keys", tags: ["admin"], roles: [],
    summary: "Create an API key with a role; its secret is shown only in this answer",
    body: Schema.Struct({ name: Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(200)), role: NewRole }),
    responses: { 201: { description: "created", schema: CreatedKey }, 400: problemResponse("invalid body"), 401: problemResponse("no key"), 403: problemResponse("not admin") },
    handler: ({ body }) => Effect.map(ApiKeys.use((keys) => keys.create(body)), (created) => ({ status: 201, body: created }))
  }),
  route({
    method: "GET", url: "/v1/admin/keys", tags: ["admin"], roles: [],
    summary: "List live API keys (without secrets)",
    responses: { 200: { description: "keys", schema: Schema.Struct({ keys: Schema.Array(ApiKey) }) }, 401: problemResponse("no key"), 403: problemResponse("not admin") },
    handler: () => Effect.map(ApiKeys.use((keys) => keys.list), (keys) => ({ status: 200, body: { keys } }))
  }),
  route({
    method: "DELETE", url: "/v1/admin/keys/:id", tags: ["admin"], roles: [],
    summary: "Revoke an API key",
    params: Schema.Struct({ id: Schema.String }),
    responses: { 204: { description: "revoked" }, 401: problemResponse("no key"), 403: problemResponse("not admin"), 404: problemResponse("no such live key"), 409: problemResponse("the last admin key while the bootstrap key is disabled") },
    handler: ({ params }) =>
      Effect.gen(function*() {
        const revoked = yield* (yield* ApiKeys).revoke(params.id)
        if (!revoked) return yield* new NotFound({ detail: `no live key ${params.id}` })
        return { status: 204 }
      })
  }),
  route({
    method: "POST", url: "/v1/admin/projections/:name/rebuild", tags: ["admin"], roles: [],
    summary: "Rebuild a projection (e.g. `entities`, the entity read model) from the event store's full history",
    params: Schema.Struct({ name: Schema.String }),
    responses: { 202: { description: "rebuild started" }, 401: problemResponse("no key"), 403: problemResponse("not admin"), 404: problemResponse("no such projection") },
    handler: ({ params }) =>
      Projections.use((projections) => projections.rebuild(params.name)).pipe(
        Effect.catchTag("ProjectionNotFound", (error) => Effect.fail(new NotFound({ detail: `no projection ${error.name}` }))),
        Effect.as({ status: 202 })
      )
  }),
  route({
    method: "GET", url: "/v1/admin/dead-letters", tags: ["admin"], roles: [],
    summary: "Messages the bus could not handle (DEADLETTERS), oldest first: each with its reason, original subject, stream sequence, delivery count, time, headers and payload (first 64 KiB). Page with `after` = the previous page's `nextAfter`",
    query: Schema.Struct({
      /** the `sequence` of the last dead letter already seen (exclusive); from the oldest kept without it */
      after: Schema.optionalKey(NonNegativeIntFromString),
      /** at most this many (1–1000, default 100) */
      limit: Schema.optionalKey(Limit)
    }),
    responses: {
      200: { description: "a page of dead letters", schema: DeadLetterPage },
      400: problemResponse("invalid query"),
      401: problemResponse("no key"),
      403: problemResponse("not admin"),
      503: problemResponse("the bus is unavailable")
    },
    handler: ({ query }) =>
      Effect.gen(function*() {
        const deadLetters = yield* DeadLetters
        // each keeps up to 64 KiB of its payload: a page is bounded in bytes too (boundedPage.ts)
        const page = yield* readBoundedPage(query.limit ?? 100, query.after, (count, after) =>
          Effect.map(deadLetters.list({ limit: count, after }), (slice) => ({ items: slice.deadLetters, more: slice.nextAfter !== undefined, next: slice.nextAfter })),
          (last) => last.sequence)
        return { status: 200, body: { deadLetters: page.items, ...(page.more && page.next !== undefined ? { nextAfter: page.next } : {}) } }
      })
  })
]
