import { Schema } from "effect"

const rfc3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-](\d{2}):(\d{2}))$/

const daysIn = (year: number, month: number) =>
  month === 2 ? (year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28) : [4, 6, 9, 11].includes(month) ? 30 : 31

/**
 * Whether `s` is an RFC 3339 date-time (`2024-05-01T12:00:00Z`, `…T12:00:00.5+02:00`) naming a real
 * instant. `Date.parse` alone takes `2024`, `1`, `-1` and RFC 1123 dates, and rolls 2026-02-30 over
 * to March 2; those are refused. Leap seconds (`:60`) are too: a JS date cannot hold them.
 */
const isRfc3339 = (s: string): boolean => {
  const m = rfc3339.exec(s)
  if (m === null) return false
  // read field by field, not through a sliced and mapped array: every chunk record and receipt passes here
  const year = Number(m[1]), month = Number(m[2]), day = Number(m[3]), hour = Number(m[4]), minute = Number(m[5]), second = Number(m[6])
  const offset = m[9] === undefined || (Number(m[9]) <= 23 && Number(m[10]) <= 59)
  return month >= 1 && month <= 12 && day >= 1 && day <= daysIn(year, month) && hour <= 23 && minute <= 59 && second <= 59 && offset
}

/** An RFC 3339 date-time, as written in entity fields and query parameters. */
export const IsoDateTime = Schema.String.check(
  Schema.makeFilter((s: string) => isRfc3339(s) || "Expected an RFC 3339 date-time, e.g. 2024-05-01T12:00:00Z", { description: "RFC 3339 date-time" })
)
