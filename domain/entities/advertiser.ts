/** Advertisers: a record (domain/entities/record.ts) with a name, domain, currency and status. */
import { Schema } from "effect"
import { Uint64String } from "../ids.ts"
import { recordDecider } from "./record.ts"
import { Currency, Name } from "./fields.ts"

export const Advertiser = Schema.Struct({
  name: Name,
  domain: Schema.optionalKey(Schema.String.check(Schema.isMaxLength(253))),
  currency: Schema.optionalKey(Currency),
  status: Schema.optionalKey(Schema.Literals(["active", "paused", "archived"]))
}).annotate({ identifier: "Advertiser" })

export const advertiser = recordDecider({ type: "advertiser", id: Uint64String, fields: Advertiser })
