/** Schemas of query parameters and headers shared by several routes. */
import { Schema, SchemaGetter } from "effect"
import { IsoDateTime } from "../../domain/isoDateTime.ts"

const digits = /^[0-9]+$/

/**
 * A non-negative integer in decimal digits only — no sign, exponent, hex, fraction or spaces (`0x10`,
 * `1e3` are refused) — and at most 2^53 - 1, the largest integer a number holds exactly.
 */
export const NonNegativeIntFromString = Schema.String.check(
  Schema.makeFilter((s: string) => digits.test(s) || "Expected a decimal integer (digits only)", { description: "decimal digits" }),
  Schema.makeFilter((s: string) => !digits.test(s) || Number(s) <= Number.MAX_SAFE_INTEGER || `Expected at most ${Number.MAX_SAFE_INTEGER}`)
).pipe(Schema.decodeTo(Schema.Int, {
  decode: SchemaGetter.transform((s: string) => Number(s)),
  encode: SchemaGetter.transform((n: number) => String(n))
}))

export const Limit = NonNegativeIntFromString.check(Schema.isBetween({ minimum: 1, maximum: 1_000 }))

/** `If-Match`: a revision as a strong entity tag (`"3"`); weak tags never match (RFC 9110 §13.1.1). */
export const RevisionTag = Schema.String.check(
  Schema.makeFilter((s: string) => /^"[0-9]+"$/.test(s) || 'Expected the revision as a strong entity tag: "3"', {
    description: 'the revision as a strong entity tag: "3"'
  }),
  Schema.makeFilter((s: string) => !/^"[0-9]+"$/.test(s) || Number(s.slice(1, -1)) <= Number.MAX_SAFE_INTEGER || `Expected a revision of at most ${Number.MAX_SAFE_INTEGER}`)
)

/** An RFC 3339 instant, normalised to UTC with milliseconds so it compares with recorded times. */
export const IsoTimestamp = IsoDateTime.pipe(
  Schema.decodeTo(Schema.String, {
    decode: SchemaGetter.transform((s: string) => new Date(s.toUpperCase()).toISOString()),
    encode: SchemaGetter.transform((s: string) => s)
  })
)
