/**
 * Segment reads, from the segment read model (projections/ingest/segments.ts): a segment's members
 * now, members per partner, and per UTC day the profiles that joined it, left it by a remove and left
 * it by expiry; and a partner's own view, the segments it feeds with the members its memberships hold.
 * The read model follows the event store, so a read may lag the newest events by the projection's lag
 * (gauge `tributary_projection_lag_events{projection="segments"}`).
 *
 * A segment's totals mix every partner's data, so partner keys may not read them (403); a partner
 * key reads only its own partner's view.
 */
import { Clock, Effect, Option, Schema } from "effect"
import { PartnerId } from "../../domain/entities/partner.ts"
import { Uint64String } from "../../domain/ids.ts"
import { Day, PartnerSegment, Segment, SegmentReadModel } from "../../projections/ingest/segments.ts"
import { forPartner } from "../authorization.ts"
import { InvalidRequest, NotFound, problemResponse } from "../problems.ts"
import { route } from "../route.ts"
import { Limit } from "./params.ts"

/** Days a segment read covers when `from` is not given: `to` and the 89 before it. */
export const defaultDays = 90
/** The longest range one read may ask for, in days (a year; read longer spans a year at a time). */
export const maxDays = 366

const DAY_MS = 86_400_000

const dayAt = (millis: number) => new Date(millis).toISOString().slice(0, 10)
const millisOf = (day: string) => Date.parse(`${day}T00:00:00Z`)

const invalidQuery = (field: "from" | "to", message: string) => new InvalidRequest({ issues: [{ in: "query", path: [field], message }] })

/** `from`..`to` as asked, defaulting to the last `defaultDays` days up to today (UTC); refused when reversed or too long. */
const dayRange = (query: { readonly from?: string; readonly to?: string }) =>
  Effect.gen(function*() {
    const to = query.to ?? dayAt(yield* Clock.currentTimeMillis)
    const from = query.from ?? dayAt(millisOf(to) - (defaultDays - 1) * DAY_MS)
    const days = (millisOf(to) - millisOf(from)) / DAY_MS + 1
    if (days < 1) return yield* invalidQuery("to", `to (${to}) is before from (${from})`)
    if (days > maxDays) return yield* invalidQuery("from", `at most ${maxDays} days per read; from ${from} to ${to} is ${days}`)
    return { from, to }
  })

const PartnerSegmentPage = Schema.Struct({
  items: Schema.Array(PartnerSegment),
  /** pass as `after` for the next page; absent on the last page */
  next: Schema.optionalKey(Uint64String)
}).annotate({ identifier: "PartnerSegmentPage" })

const readProblems = {
  400: problemResponse("invalid id or query (problem+json naming the field)"),
  401: problemResponse("missing or unknown API key"),
  503: problemResponse("too many reads in progress, or the read model is unavailable; see Retry-After")
} as const

export const segmentRoutes = [
  route({
    method: "GET", url: "/v1/segments/:id", tags: ["segments"], roles: ["service", "auditor"], admission: "reads",
    summary: "A segment: members now, members per partner, and per UTC day (of each event's recordedAt) the profiles added, removed and expired",
    params: Schema.Struct({ id: Uint64String }),
    query: Schema.Struct({
      /** first day (UTC, inclusive); default 89 days before `to` */
      from: Schema.optionalKey(Day),
      /** last day (UTC, inclusive); default today */
      to: Schema.optionalKey(Day)
    }),
    responses: {
      200: { description: "the segment; only days with changes are listed", schema: Segment },
      ...readProblems,
      403: problemResponse("the key's role may not read segments (partner keys: use /v1/ingest/{partner}/segments)"),
      404: problemResponse("the segment never had a member")
    },
    handler: ({ params, query }) =>
      Effect.gen(function*() {
        const range = yield* dayRange(query)
        const segment = yield* (yield* SegmentReadModel).get(params.id, range)
        if (Option.isNone(segment)) return yield* new NotFound({ detail: `segment ${params.id} never had a member` })
        return { status: 200, body: segment.value }
      })
  }),
  route({
    method: "GET", url: "/v1/ingest/:partner/segments", tags: ["segments"], roles: ["service", "auditor", "partner"], admission: "reads",
    summary: "The segments a partner feeds, in numeric id order, with the profiles its own memberships hold now",
    authorize: ({ principal, params }) => forPartner(principal, params.partner),
    params: Schema.Struct({ partner: PartnerId }),
    query: Schema.Struct({ limit: Schema.optionalKey(Limit), after: Schema.optionalKey(Uint64String) }),
    responses: {
      200: { description: "a page of the partner's segments (members may be 0: all its memberships ended)", schema: PartnerSegmentPage },
      ...readProblems,
      403: problemResponse("the key may not read this partner's segments")
    },
    handler: ({ params, query }) =>
      Effect.gen(function*() {
        const page = yield* (yield* SegmentReadModel).ofPartner(params.partner, {
          limit: query.limit ?? 100,
          ...(query.after === undefined ? {} : { after: query.after })
        })
        const last = page.items[page.items.length - 1]
        return { status: 200, body: { items: page.items, ...(page.more && last !== undefined ? { next: last.segmentId } : {}) } }
      })
  })
]
