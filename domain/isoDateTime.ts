import { Schema } from "effect"

/** An ISO-8601 date-time, as written in entity fields and query parameters. */
export const IsoDateTime = Schema.String.check(
  Schema.makeFilter((s: string) => !Number.isNaN(Date.parse(s)) || "Expected an ISO-8601 date-time", { description: "ISO-8601 date-time" })
)
