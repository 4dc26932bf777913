/**
 * How the rollups bucket what they count: UTC minutes (of an event's device time, of a session's
 * start, of the intake's receipt) and session lengths. No imports: the rollups' writer thread
 * (infra/readmodel/rollupsWriterThread.ts) loads it too.
 */

/** Session lengths are counted in these buckets: up to 10 s, up to 30 s, …, and over an hour. */
export const sessionLengthBounds = [10, 30, 60, 180, 600, 1_800, 3_600] as const

/** The UTC minute (since the epoch) of an RFC 3339 instant. */
export const minuteOf = (time: string): number => Math.floor(Date.parse(time) / 60_000)
export const minuteAt = (minute: number): string => new Date(minute * 60_000).toISOString()
