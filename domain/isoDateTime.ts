import { Schema } from "effect"

/** The shape alone; the fields are then read at their fixed offsets (only the fraction varies in length). */
const rfc3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/

/** The two ASCII digits at `at` (the shape is checked first). */
const twoDigits = (s: string, at: number) => (s.charCodeAt(at) - 48) * 10 + s.charCodeAt(at + 1) - 48

const daysIn = (year: number, month: number) =>
  month === 2 ? (year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28) : month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31

/**
 * Whether `s` is an RFC 3339 date-time (`2024-05-01T12:00:00Z`, `…T12:00:00.5+02:00`) naming a real
 * instant. `Date.parse` alone takes `2024`, `1`, `-1` and RFC 1123 dates, and rolls 2026-02-30 over
 * to March 2; those are refused. Leap seconds (`:60`) are too: a JS date cannot hold them.
 */
const isRfc3339 = (s: string): boolean => {
  // A match without captures and digits read in place, not a match array of substrings through Number:
  // every SDK event passes here twice (intake, then the device pipeline), and chunk records and receipts too.
  if (!rfc3339.test(s)) return false
  const year = twoDigits(s, 0) * 100 + twoDigits(s, 2), month = twoDigits(s, 5), day = twoDigits(s, 8)
  const end = s.length - 1
  const utc = s.charCodeAt(end) === 0x5a || s.charCodeAt(end) === 0x7a // Z or z; else the offset is the last 6 characters, ±hh:mm
  const offset = utc || (twoDigits(s, end - 4) <= 23 && twoDigits(s, end - 1) <= 59)
  return month >= 1 && month <= 12 && day >= 1 && day <= daysIn(year, month) &&
    twoDigits(s, 11) <= 23 && twoDigits(s, 14) <= 59 && twoDigits(s, 17) <= 59 && offset
}

/** An RFC 3339 date-time, as written in entity fields and query parameters. */
export const IsoDateTime = Schema.String.check(
  Schema.makeFilter((s: string) => isRfc3339(s) || "Expected an RFC 3339 date-time, e.g. 2024-05-01T12:00:00Z", { description: "RFC 3339 date-time" })
)

/**
 * An RFC 3339 date-time with at most nine digits of fraction (nanoseconds), as a partner's record may
 * carry one. RFC 3339 bounds the fraction nowhere, and a record keeps its time as sent through its
 * profile's history into every partner's delivery: a line of 64 KiB could be one time of 60,000 digits,
 * and a thousand such records made a DELIVER chunk no NATS server takes (its lane then waited for good).
 * Stored events keep `IsoDateTime`, so what was written before still reads.
 */
export const BoundedIsoDateTime = IsoDateTime.check(
  Schema.makeFilter((s: string) => !/\.\d{10}/.test(s) || "Expected at most 9 digits of fraction (nanoseconds)", { description: "RFC 3339 date-time, at most 9 digits of fraction" })
)
