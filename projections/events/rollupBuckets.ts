/**
 * How the rollups bucket what they count: UTC minutes (of an event's device time, of a session's
 * start, of the intake's receipt), minutes into hours and days, and session lengths. No imports but
 * types: the rollups' threads (infra/readmodel/rollupsWriterThread.ts, rollupsReaderThread.ts) load it too.
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

/** Session lengths are counted in these buckets: up to 10 s, up to 30 s, …, and over an hour. */
export const sessionLengthBounds = [10, 30, 60, 180, 600, 1_800, 3_600] as const

/** The UTC minute (since the epoch) of an RFC 3339 instant. */
export const minuteOf = (time: string): number => Math.floor(Date.parse(time) / 60_000)
export const minuteAt = (minute: number): string => new Date(minute * 60_000).toISOString()
