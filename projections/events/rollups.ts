/**
 * The app-event rollups (issue 8 item 6), as queries see them: per UTC minute of each event's own
 * device time and per combination of dimension values, the events, the devices seen (kept as
 * presence rows, so distinct devices over any range and grouping are exact), sessions by their start
 * with their total length and a length histogram, and custom events by name with the sums of their
 * numeric props. Hours and days are summed from minutes at query time (one kind of row to write,
 * and exact distinct counts need the per-minute presence rows anyway); answers are bounded in buckets.
 * Past a horizon rows are kept per hour, then per day (RollupTiers in rollupBuckets.ts): a query
 * finer than what its range still has is refused (MetricsNotKept), not answered with wrong buckets.
 * Fed from EVENTS_CLEAN and SESSIONS by infra/events/rollupConsumer.ts; stored by infra/readmodel/rollups.ts.
 */
import { Context, Schema } from "effect"
import type { Effect } from "effect"
import { Alert } from "../../domain/events/Alert.ts"
import { type Dimension, dimensions } from "../../domain/events/dimensions.ts"
import type { ReadModelError } from "../ReadModelError.ts"

export const Measure = Schema.Literals(["events", "devices", "sessions", "sessionLength", "custom"])
export type Measure = typeof Measure.Type

export const Granularity = Schema.Literals(["minute", "hour", "day"])
export type Granularity = typeof Granularity.Type


/** A query, decoded and checked (the route's job): minutes are UTC minutes since the epoch, `to` exclusive. */
export interface MetricsQuery {
  readonly app: string
  readonly measure: Measure
  readonly granularity: Granularity
  readonly fromMinute: number
  readonly toMinute: number
  readonly groupBy: ReadonlyArray<Dimension>
  /** dimension → the values it may take (a dimension given twice matches either value) */
  readonly filters: ReadonlyMap<Dimension, ReadonlyArray<string>>
  /** `custom`: the event name, and the numeric prop to sum instead of counting */
  readonly name?: string
  readonly sum?: string
  /** answer at most this many rows and one more (the caller refuses more) */
  readonly maxRows?: number
  /** answer at most this many characters of rows (their dimension values and times, about as sent); more: MetricsTooLarge */
  readonly maxChars?: number
}

/** A query whose rows would be more than its `maxChars`: nothing is answered. */
export class MetricsTooLarge extends Schema.TaggedError<MetricsTooLarge>()("MetricsTooLarge", {
  maxChars: Schema.Number
}) {}

/**
 * A query for rows the rollups no longer keep at that width (RollupTiers): a granularity finer than the
 * rows its range starts in, or an end inside an hour or a day kept whole. `field` is the parameter to change.
 */
export class MetricsNotKept extends Schema.TaggedError<MetricsNotKept>()("MetricsNotKept", {
  field: Schema.Literals(["granularity", "from", "to"]),
  message: Schema.String
}) {}

/** Too many metrics queries wait for the reader already: answered 503 with Retry-After, not queued. */
export class MetricsBusy extends Schema.TaggedError<MetricsBusy>()("MetricsBusy", {
  waiting: Schema.Number
}) {}

/** One bucket of sessions' lengths: sessions that lasted at most `upToSeconds` (and more than the bucket before; null: longer than every bound). */
export const LengthBucket = Schema.Struct({ upToSeconds: Schema.NullOr(Schema.Int), sessions: Schema.Int })

/**
 * A row: `time` (its bucket's start, RFC 3339 UTC), the value of each groupBy dimension (null: the
 * events did not carry it), `value`, and for `sessionLength` a `distribution` of the sessions by length.
 * Its keys depend on `groupBy`, so its schema is a record.
 */
export const MetricsRow = Schema.Record(Schema.String, Schema.Union([Schema.String, Schema.Finite, Schema.Null, Schema.Array(LengthBucket)]))
  .annotate({ identifier: "MetricsRow" })
export type MetricsRow = typeof MetricsRow.Type

export const MetricsAnswer = Schema.Struct({
  measure: Measure,
  granularity: Granularity,
  rows: Schema.Array(MetricsRow)
}).annotate({ identifier: "MetricsAnswer" })

export const isDimension = (s: string): s is Dimension => (dimensions as ReadonlyArray<string>).includes(s)

export interface AlertPage {
  readonly items: ReadonlyArray<Alert>
  readonly more: boolean
}

export class RollupReadModel extends Context.Service<RollupReadModel, {
  /**
   * One query; `caller` (the asking API key) takes its turn at the reader in rotation with the others,
   * so one caller's many queries do not hold everyone else's up (MetricsBusy past a bound, its own or all).
   */
  readonly query: (query: MetricsQuery, caller: string) => Effect.Effect<ReadonlyArray<MetricsRow>, ReadModelError | MetricsTooLarge | MetricsBusy | MetricsNotKept>
  /** Alerts in the order raised, after the id `after`, of one app when given. */
  readonly alerts: (options: { readonly limit: number; readonly after?: number; readonly app?: string }) => Effect.Effect<AlertPage, ReadModelError>
}>()("tributary/RollupReadModel") {}

