/**
 * How the rollups bucket what they count: UTC minutes (of an event's device time, of a session's
 * start, of the intake's receipt), minutes into hours and days, how long rows are kept per minute and
 * per hour (RollupTiers), session lengths, and what an app's SDK may add to them (RollupLimits: past
 * them, into an "(other)" bucket). No imports but types: the rollups' threads
 * (infra/readmodel/rollupsWriterThread.ts, rollupsReaderThread.ts) load it too.
 */

import type { Granularity } from "./rollups.ts"

/** Minutes in a bucket of each granularity. */
export const minutesOf: Record<Granularity, number> = { minute: 1, hour: 60, day: 1_440 }

/**
 * SQL for the first minute of the bucket of `column`'s minute: floored, for minutes before 1970 too
 * (SQLite's integer division rounds toward zero, which put 1969's last hour into 1970's first: found by
 * an outside attack).
 */
export const bucketSql = (column: string, width: number): string => `(${column} - (((${column} % ${width}) + ${width}) % ${width}))`

/** The first minute of the bucket of `width` minutes that holds `minute` (floored, as bucketSql). */
export const bucketOf = (minute: number, width: number): number => minute - (((minute % width) + width) % width)

/**
 * How long the rollups keep rows per minute, then per hour; older rows are per UTC day, for good. A row
 * is kept at the finest width its bucket's age allows when written (a late event three months back goes
 * straight to its hour or day), and rows that age past a horizon are rolled into their hour or day by
 * the rollups' compaction. Horizons are whole days back from the start of today (UTC), so every
 * hour and day is on one side of them.
 */
export interface RollupTiers {
  /** days of minute rows (ROLLUP_MINUTE_DAYS) */
  readonly minuteDays: number
  /** days of hour rows (ROLLUP_HOUR_DAYS), at least minuteDays */
  readonly hourDays: number
}

export const defaultRollupTiers: RollupTiers = { minuteDays: 7, hourDays: 92 }

/** Tiers that never roll a row up (a test's, about fixed dates). */
export const keepMinutes: RollupTiers = { minuteDays: 1_000_000, hourDays: 1_000_000 }

/** The first minute kept per minute, and per hour, at `nowMillis`. */
export interface TierFloors {
  readonly minutes: number
  readonly hours: number
}

export const tierFloors = (tiers: RollupTiers, nowMillis: number): TierFloors => {
  const today = bucketOf(Math.floor(nowMillis / 60_000), minutesOf.day)
  return { minutes: today - tiers.minuteDays * minutesOf.day, hours: today - tiers.hourDays * minutesOf.day }
}

/**
 * The floors in force: the configured ones, or how far rows were rolled up already (`rolled`, the
 * compaction's marks) where that is later. A horizon raised since keeps what was rolled as it is: before
 * (found by stop 27's outside attack), a minute query over rows rolled into days answered the whole day
 * as its first minute, and the other minutes 0.
 */
export const floorsInForce = (floors: TierFloors, rolled: TierFloors): TierFloors => ({
  minutes: Math.max(floors.minutes, rolled.minutes),
  hours: Math.max(floors.hours, rolled.hours)
})

/** The row `minute` is counted in: its own, its hour's or its day's first minute. */
export const keptMinute = (minute: number, floors: TierFloors): number =>
  minute >= floors.minutes ? minute : bucketOf(minute, minute >= floors.hours ? minutesOf.hour : minutesOf.day)

/** The first minute rows of `granularity` are kept from (days: every one). */
const keptFrom = (granularity: Granularity, floors: TierFloors): number =>
  granularity === "minute" ? floors.minutes : granularity === "hour" ? floors.hours : -Infinity

/**
 * Why a query asks for rows no longer kept at its width, given the floors in force, if it does: its
 * granularity finer than the rows its range starts in, or an end inside an hour or day kept whole.
 * `field` is the parameter to change.
 */
export const notKeptAt = (
  q: { readonly granularity: Granularity; readonly fromMinute: number; readonly toMinute: number },
  floors: TierFloors
): { readonly field: "granularity" | "from" | "to"; readonly message: string } | undefined => {
  const from = keptFrom(q.granularity, floors)
  if (q.fromMinute < from) {
    const coarser = q.granularity === "minute" && q.fromMinute >= floors.hours ? "hour" : "day"
    return { field: "granularity", message: `${q.granularity} rows are kept from ${minuteAt(from)} on (older ones per ${coarser}): ask a coarser granularity, or a later from` }
  }
  // the width of the rows just after `from` and just before `to`
  const widthAt = (minute: number) => minute < floors.hours ? minutesOf.day : minute < floors.minutes ? minutesOf.hour : 1
  for (const [field, minute, width] of [["from", q.fromMinute, widthAt(q.fromMinute)], ["to", q.toMinute, widthAt(q.toMinute - 1)]] as const) {
    if (minute % width !== 0) return { field, message: `rows there are kept per ${width === minutesOf.day ? "day" : "hour"}: ${field} must be at the start of one (UTC)` }
  }
  return undefined
}

/** Session lengths are counted in these buckets: up to 10 s, up to 30 s, …, and over an hour. */
export const sessionLengthBounds = [10, 30, 60, 180, 600, 1_800, 3_600] as const

/** The UTC minute (since the epoch) of an RFC 3339 instant. */
export const minuteOf = (time: string): number => Math.floor(Date.parse(time) / 60_000)
export const minuteAt = (minute: number): string => new Date(minute * 60_000).toISOString()

/** The value a dimension, or the name a custom event, is counted under past its app's limit (RollupLimits). */
export const other = "(other)"

/**
 * What one app may add to the rollups. Its SDK key is in every copy of the app, so whoever unpacks it
 * decides what the rollups hold: before these, custom events with 50 numeric props of 64-character
 * keys, each in a minute of its own, wrote ~12 KB of rows an event (1.43 GB in 80 s from 5.5 MB of
 * gzip, stop 26's outside attack). Past a limit nothing is lost from the counts: the events count under
 * `other`, as in the analytics tools app developers know (Firebase's 500 event names, 25 parameters).
 */
export interface RollupLimits {
  /** distinct custom event names per app, for good; later names count as `other` (ROLLUP_MAX_CUSTOM_NAMES) */
  readonly customNames: number
  /** numeric props summed per custom event name, for good; others are not summed (ROLLUP_MAX_SUMMED_PROPS) */
  readonly summedProps: number
  /**
   * new combinations of dimension values per app per UTC day (of the server clock as they are counted:
   * device times are the SDK's to choose); past it an event of a new
   * combination counts with every dimension `other` but its type, publisher and category (ROLLUP_MAX_NEW_DIM_SETS)
   */
  readonly newDimSetsPerDay: number
  /**
   * UTF-8 bytes of the values of those new combinations per app per UTC day (ROLLUP_MAX_NEW_DIM_SET_BYTES):
   * the same bound past it. A combination's values are up to ~2.7 KB (seven 128-character values of
   * 3-byte characters), ~100 bytes as SDKs send them.
   */
  readonly newDimSetBytesPerDay: number
}

export const defaultRollupLimits: RollupLimits = { customNames: 500, summedProps: 25, newDimSetsPerDay: 50_000, newDimSetBytesPerDay: 16 * 1024 * 1024 }
