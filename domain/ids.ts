import { Schema } from "effect"

const MAX_U64 = 18446744073709551615n

/**
 * A 64-bit unsigned integer written as a decimal string. Never a JS number: 2^53 is too small.
 * Canonical form only ("0" or no leading zeros), so one id has one spelling.
 */
export const Uint64String = Schema.String.check(
  Schema.makeFilter(
    // only a 20-digit string can pass 2^64 - 1: the others skip the BigInt (every delivered record's segment is checked)
    (s: string) => (/^(0|[1-9][0-9]{0,19})$/.test(s) && (s.length < 20 || BigInt(s) <= MAX_U64)) || "Expected a 64-bit unsigned integer as a decimal string",
    { identifier: "Uint64String", description: "64-bit unsigned integer as a decimal string", examples: ["9007199254740993"] }
  )
)

