/** Field schemas several entity types share. */
import { Schema } from "effect"

export const Name = Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(200))
export const Currency = Schema.String.check(Schema.isPattern(/^[A-Z]{3}$/, { description: "ISO 4217 currency code" }))
