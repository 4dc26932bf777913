/** Campaigns: a record belonging to an advertiser (its `advertiserId` must exist). */
import { Schema } from "effect"
import { Uint64String } from "../ids.ts"
import { IsoDateTime } from "../isoDateTime.ts"
import { Name } from "./fields.ts"
import { recordDecider } from "./record.ts"

export const Campaign = Schema.Struct({
  advertiserId: Uint64String,
  name: Name,
  budget: Schema.optionalKey(Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))),
  startsAt: Schema.optionalKey(IsoDateTime),
  endsAt: Schema.optionalKey(IsoDateTime),
  status: Schema.optionalKey(Schema.Literals(["draft", "active", "paused", "ended"]))
}).annotate({ identifier: "Campaign" })

export const campaign = recordDecider({ type: "campaign", id: Uint64String, fields: Campaign, parent: { type: "advertiser", field: "advertiserId" } })
