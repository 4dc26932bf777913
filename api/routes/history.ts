/** The global history: every event in commit order, for auditors. */
import { Effect, Schema } from "effect"
import { EventEnvelope } from "../../domain/envelope.ts"
import { globalHistory } from "../../projections/EntityQueries.ts"
import { problemResponse } from "../problems.ts"
import { route } from "../route.ts"
import { Limit, NonNegativeIntFromString } from "./params.ts"

const GlobalHistoryPage = Schema.Struct({
  events: Schema.Array(EventEnvelope),
  /** pass as fromPosition for the next page; absent on the last page */
  nextPosition: Schema.optionalKey(Schema.Int)
}).annotate({ identifier: "GlobalHistory" })

export const historyRoutes = [
  route({
    method: "GET", url: "/v1/history", tags: ["history"], roles: ["auditor"],
    summary: "Every event in global commit order, from a position (inclusive)",
    query: Schema.Struct({ fromPosition: Schema.optionalKey(NonNegativeIntFromString), limit: Schema.optionalKey(Limit) }),
    responses: {
      200: { description: "events", schema: GlobalHistoryPage },
      400: problemResponse("invalid query"),
      401: problemResponse("missing or unknown API key"),
      403: problemResponse("the key's role may not read history")
    },
    handler: ({ query }) =>
      Effect.gen(function*() {
        const limit = query.limit ?? 100
        const page = yield* globalHistory({ limit, ...(query.fromPosition === undefined ? {} : { fromPosition: query.fromPosition }) })
        return { status: 200, body: { events: page.events, ...(page.nextPosition === undefined ? {} : { nextPosition: page.nextPosition }) } }
      })
  })
]
