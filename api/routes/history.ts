/** The global history: every event in commit order, for auditors, by page or as one live stream. */
import { Effect, Filter, Schema, Stream } from "effect"
import { EventStore } from "../../domain/EventStore.ts"
import { EventEnvelope, toEnvelope } from "../../domain/envelope.ts"
import { globalHistory } from "../../projections/EntityQueries.ts"
import { problemResponse } from "../problems.ts"
import { route } from "../route.ts"
import { readBoundedPage } from "./boundedPage.ts"
import { Limit, NonNegativeIntFromString } from "./params.ts"

const GlobalHistoryPage = Schema.Struct({
  events: Schema.Array(EventEnvelope),
  /** pass as fromPosition for the next page; absent on the last page */
  nextPosition: Schema.optionalKey(Schema.Int)
}).annotate({ identifier: "GlobalHistory" })

export const historyRoutes = [
  route({
    method: "GET", url: "/v1/history", tags: ["history"], roles: ["auditor"], admission: "reads",
    summary: "Every event in global commit order, from a position (inclusive): at most `limit` events and about 8 MiB of them; page on with `nextPosition`",
    query: Schema.Struct({ fromPosition: Schema.optionalKey(NonNegativeIntFromString), limit: Schema.optionalKey(Limit) }),
    responses: {
      200: { description: "events", schema: GlobalHistoryPage },
      400: problemResponse("invalid query"),
      401: problemResponse("missing or unknown API key"),
      403: problemResponse("the key's role may not read history"),
      503: problemResponse("too many reads in progress, or the event store is down; see Retry-After")
    },
    handler: ({ query }) =>
      Effect.gen(function*() {
        const page = yield* readBoundedPage(query.limit ?? 100, query.fromPosition, (count, from) =>
          Effect.map(globalHistory({ limit: count, ...(from === undefined ? {} : { fromPosition: from }) }), (slice) => ({
            items: slice.events, more: slice.nextPosition !== undefined, next: slice.nextPosition
          })), (_last, next) => next.position)
        return { status: 200, body: { events: page.items, ...(page.more && page.next !== undefined ? { nextPosition: page.next } : {}) } }
      })
  }),
  route({
    method: "GET", url: "/v1/history/stream", tags: ["history"], roles: ["auditor"],
    summary: "Every event in global commit order from a position (inclusive), then each new one as it commits; NDJSON, or SSE with Accept: text/event-stream",
    query: Schema.Struct({ fromPosition: Schema.optionalKey(NonNegativeIntFromString) }),
    headers: Schema.Struct({
      /** SSE reconnection: the id (position) of the last event received; the stream resumes after it (wins over fromPosition) */
      "last-event-id": Schema.optionalKey(NonNegativeIntFromString)
    }),
    responses: {
      200: {
        description: "the events, caught up from the event store, then followed live; the stream does not end by itself",
        stream: { item: EventEnvelope, eventId: (event: EventEnvelope) => String(event.position), eventName: (event: EventEnvelope) => event.type }
      },
      400: problemResponse("invalid query or Last-Event-ID"),
      401: problemResponse("missing or unknown API key"),
      403: problemResponse("the key's role may not read history")
    },
    handler: ({ query, headers }) =>
      EventStore.use((store) => {
        const from = query.fromPosition ?? 0
        // `after` is exclusive: the last position already seen.
        const after = headers["last-event-id"] ?? (from > 0 ? from - 1 : undefined)
        const events = store.subscribeToAll(after === undefined ? {} : { after }).pipe(
          Stream.filterMap(Filter.fromPredicateOption(toEnvelope))
        )
        return Effect.succeed({ status: 200, stream: events })
      })
  })
]
