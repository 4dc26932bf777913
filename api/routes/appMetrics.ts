/**
 * `GET /v1/apps/{app}/metrics`: an app's aggregates from the rollups (projections/events/rollups.ts),
 * never from raw events. Buckets are UTC, by each event's own device time (sessions by their start);
 * `from` is inclusive and `to` exclusive, to the minute. `groupBy` is a comma list of declared
 * dimensions; `filter=<dim>:<value>` is repeatable (a value may hold commas and colons): the same
 * dimension twice matches either value, different dimensions must all match. An answer covers at
 * most `maxBuckets` buckets, `maxRows` rows and `maxAnswerChars` characters (400 naming `from` or
 * `groupBy` beyond). Queries run on the rollups' reader thread, not on the event loop.
 *
 * Roles service and auditor (and admin). Not the app's own SDK key: it ships inside every copy of
 * the app, so whoever unpacks the app would read the publisher's figures.
 */
import { Effect, Schema } from "effect"
import { type Dimension, dimensions } from "../../domain/events/dimensions.ts"
import { Uint64String } from "../../domain/ids.ts"
import { minuteOf, minutesOf } from "../../projections/events/rollupBuckets.ts"
import { isDimension, Granularity, Measure, MetricsAnswer, RollupReadModel } from "../../projections/events/rollups.ts"
import { InvalidRequest, Overloaded, problemResponse } from "../problems.ts"
import { route } from "../route.ts"
import { IsoTimestamp } from "./params.ts"

/** Buckets one answer may cover: a day of minutes, two months of hours, four years of days. */
export const maxBuckets = 1_440
/** Rows one answer may hold: group by fewer or narrower dimensions, or filter, beyond. */
export const maxRows = 10_000
/**
 * Characters one answer may hold, about as sent (rows of long dimension values weigh more than rows):
 * 10,000 rows of twelve 128-character values were 10 MB, and a second of the event loop to encode.
 */
export const maxAnswerChars = 2 * 1024 * 1024

const invalid = (field: string, message: string) => new InvalidRequest({ issues: [{ in: "query", path: [field], message }] })

const MetricsQueryParams = Schema.Struct({
  measure: Measure,
  from: IsoTimestamp,
  to: IsoTimestamp,
  /** default hour */
  granularity: Schema.optionalKey(Granularity),
  /** comma list of dimensions; repeated, the lists are joined (`groupBy=platform&groupBy=country`) */
  groupBy: Schema.optionalKey(Schema.Union([Schema.String, Schema.Array(Schema.String)])),
  /** `<dimension>:<value>`, repeatable */
  filter: Schema.optionalKey(Schema.Union([Schema.String, Schema.Array(Schema.String)])),
  /** `custom`: the event name */
  name: Schema.optionalKey(Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(128))),
  /** `custom`: a numeric prop to sum instead of counting */
  sum: Schema.optionalKey(Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(64)))
})
type MetricsQueryParams = typeof MetricsQueryParams.Type

const parseGroupBy = (groupBy: MetricsQueryParams["groupBy"]) =>
  Effect.gen(function*() {
    const names = (typeof groupBy === "string" ? [groupBy] : groupBy ?? []).flatMap((list) => list === "" ? [] : list.split(","))
    const unknown = names.filter((name) => !isDimension(name))
    if (unknown.length > 0) return yield* invalid("groupBy", `unknown dimension ${unknown.join(", ")}; one of ${dimensions.join(", ")}`)
    if (new Set(names).size !== names.length) return yield* invalid("groupBy", "a dimension is named twice")
    return names as Array<Dimension>
  })

const parseFilters = (filter: MetricsQueryParams["filter"]) =>
  Effect.gen(function*() {
    const filters = new Map<Dimension, Array<string>>()
    for (const entry of filter === undefined ? [] : typeof filter === "string" ? [filter] : filter) {
      const colon = entry.indexOf(":")
      const dimension = colon < 0 ? entry : entry.slice(0, colon)
      if (colon < 0 || !isDimension(dimension)) {
        return yield* invalid("filter", `expected <dimension>:<value> with a dimension among ${dimensions.join(", ")}, got ${JSON.stringify(entry)}`)
      }
      filters.set(dimension, [...(filters.get(dimension) ?? []), entry.slice(colon + 1)])
    }
    if ([...filters.values()].flat().length > 100) return yield* invalid("filter", "at most 100 filters")
    return filters
  })

const readProblems = {
  400: problemResponse("invalid query (problem+json naming the parameter)"),
  401: problemResponse("missing or unknown API key"),
  403: problemResponse("the key's role may not read metrics"),
  503: problemResponse("too many reads in progress, or the rollups are unavailable; see Retry-After")
} as const

export const appMetricsRoutes = [
  route({
    method: "GET", url: "/v1/apps/:app/metrics", tags: ["apps"], roles: ["service", "auditor"], admission: "reads",
    summary: "An app's aggregates per UTC minute, hour or day: events, unique devices, sessions, mean session length, custom events (count or sum of a prop), grouped and filtered by dimensions",
    params: Schema.Struct({ app: Uint64String }),
    query: MetricsQueryParams,
    responses: {
      200: { description: "rows in time order, then by the groupBy values; buckets without data are left out", schema: MetricsAnswer },
      ...readProblems
    },
    handler: ({ params, query, principal }) =>
      Effect.gen(function*() {
        const granularity = query.granularity ?? "hour"
        const fromMinute = minuteOf(query.from)
        const toMinute = Math.ceil(Date.parse(query.to) / 60_000)
        if (toMinute <= fromMinute) return yield* invalid("to", `to (${query.to}) must be after from (${query.from})`)
        const width = minutesOf[granularity]
        const buckets = Math.floor((toMinute - 1) / width) - Math.floor(fromMinute / width) + 1
        if (buckets > maxBuckets) return yield* invalid("from", `at most ${maxBuckets} ${granularity} buckets per answer; from ${query.from} to ${query.to} is ${buckets}`)
        if (query.measure === "custom" && query.name === undefined) return yield* invalid("name", "measure=custom needs the custom event's name")
        if (query.measure !== "custom" && query.name !== undefined) return yield* invalid("name", "name is for measure=custom only")
        if (query.measure !== "custom" && query.sum !== undefined) return yield* invalid("sum", "sum is for measure=custom only")
        const groupBy = yield* parseGroupBy(query.groupBy)
        const filters = yield* parseFilters(query.filter)
        const rows = yield* (yield* RollupReadModel).query({
          app: params.app, measure: query.measure, granularity, fromMinute, toMinute, groupBy, filters, maxRows, maxChars: maxAnswerChars,
          ...(query.name === undefined ? {} : { name: query.name }),
          ...(query.sum === undefined ? {} : { sum: query.sum })
        }, principal.id).pipe(
          Effect.catchTag("MetricsNotKept", ({ field, message }) => invalid(field, message)),
          Effect.catchTag("MetricsTooLarge", () => invalid("groupBy", `an answer over ${maxAnswerChars} characters: group by fewer dimensions, filter, or ask a shorter range`)),
          Effect.catchTag("MetricsBusy", ({ waiting }) => Effect.fail(new Overloaded({ detail: `${waiting} metrics queries wait for the reader already (or this key's share of them); retry later`, retryAfterSeconds: 1 })))
        )
        if (rows.length > maxRows) return yield* invalid("groupBy", `more than ${maxRows} rows: group by fewer dimensions, filter, or ask a shorter range`)
        return { status: 200, body: { measure: query.measure, granularity, rows } }
      })
  })
]
