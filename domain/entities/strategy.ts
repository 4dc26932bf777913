/** Strategies: a record belonging to a campaign (its `campaignId` must exist), with a bid price and segments. */
import { Schema } from "effect"
import { Uint64String } from "../ids.ts"
import { Name } from "./fields.ts"
import { recordDecider } from "./record.ts"

export const Strategy = Schema.Struct({
  campaignId: Uint64String,
  name: Name,
  /** bid price per thousand impressions, in the advertiser's currency */
  bidPrice: Schema.Finite.check(Schema.isGreaterThan(0)),
  segmentIds: Schema.Array(Uint64String).check(Schema.isMaxLength(10_000))
}).annotate({ identifier: "Strategy" })

export const strategy = recordDecider({ type: "strategy", id: Uint64String, fields: Strategy, parent: { type: "campaign", field: "campaignId" } })
