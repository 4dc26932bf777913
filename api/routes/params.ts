/** Schemas of query parameters shared by several routes. */
import { Schema, SchemaGetter } from "effect"
import { IsoDateTime } from "../../domain/isoDateTime.ts"

export const NonNegativeIntFromString = Schema.FiniteFromString.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0))
export const Limit = Schema.FiniteFromString.check(Schema.isInt(), Schema.isBetween({ minimum: 1, maximum: 1_000 }))

/** An ISO-8601 instant, normalised to UTC with milliseconds so it compares with recorded times. */
export const IsoTimestamp = IsoDateTime.pipe(
  Schema.decodeTo(Schema.String, {
    decode: SchemaGetter.transform((s: string) => new Date(s).toISOString()),
    encode: SchemaGetter.transform((s: string) => s)
  })
)
