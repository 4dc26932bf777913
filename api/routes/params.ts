/** Schemas of query parameters shared by several routes. */
import { Schema, SchemaGetter } from "effect"

export const NonNegativeIntFromString = Schema.FiniteFromString.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0))
export const Limit = Schema.FiniteFromString.check(Schema.isInt(), Schema.isBetween({ minimum: 1, maximum: 1_000 }))

/** An ISO-8601 instant, normalised to UTC with milliseconds so it compares with recorded times. */
export const IsoTimestamp = Schema.String.check(
  Schema.makeFilter((s: string) => !Number.isNaN(Date.parse(s)) || "Expected an ISO-8601 date-time", { description: "ISO-8601 date-time" })
).pipe(
  Schema.decodeTo(Schema.String, {
    decode: SchemaGetter.transform((s: string) => new Date(s).toISOString()),
    encode: SchemaGetter.transform((s: string) => s)
  })
)
