/**
 * `GET /v1/alerts`: the trend alerts raised (domain/events/Alert.ts; the rule: domain/events/trend.ts),
 * oldest first, a page at a time (`after` = the last id seen), of every app or of one (`app`). The
 * same alerts are published on ALERTS (`alerts.<app>`) for those who follow them live.
 */
import { Effect, Schema } from "effect"
import { Alert } from "../../domain/events/Alert.ts"
import { Uint64String } from "../../domain/ids.ts"
import { RollupReadModel } from "../../projections/events/rollups.ts"
import { problemResponse } from "../problems.ts"
import { route } from "../route.ts"
import { Limit, NonNegativeIntFromString } from "./params.ts"

const AlertPage = Schema.Struct({
  items: Schema.Array(Alert),
  /** pass as `after` for the next page; absent on the last page */
  next: Schema.optionalKey(Schema.Int)
}).annotate({ identifier: "AlertPage" })

export const alertRoutes = [
  route({
    method: "GET", url: "/v1/alerts", tags: ["apps"], roles: ["service", "auditor"], admission: "reads",
    summary: "Trend alerts (an app's events per minute or intake latency leaving its recent trend), oldest first",
    query: Schema.Struct({
      app: Schema.optionalKey(Uint64String),
      after: Schema.optionalKey(NonNegativeIntFromString),
      limit: Schema.optionalKey(Limit)
    }),
    responses: {
      200: { description: "a page of alerts", schema: AlertPage },
      400: problemResponse("invalid query (problem+json naming the parameter)"),
      401: problemResponse("missing or unknown API key"),
      403: problemResponse("the key's role may not read alerts"),
      503: problemResponse("too many reads in progress, or the rollups are unavailable; see Retry-After")
    },
    handler: ({ query }) =>
      Effect.gen(function*() {
        const page = yield* (yield* RollupReadModel).alerts({
          limit: query.limit ?? 100,
          ...(query.after === undefined ? {} : { after: query.after }),
          ...(query.app === undefined ? {} : { app: query.app })
        })
        const last = page.items[page.items.length - 1]
        return { status: 200, body: { items: page.items, ...(page.more && last !== undefined ? { next: last.id } : {}) } }
      })
  })
]
