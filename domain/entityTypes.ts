/**
 * The entity types the platform knows. Each declares its id schema, the schema of its fields and,
 * where it belongs to another entity, which field names the parent. Adding a type is adding an
 * entry here; the decider, API, relay and read model are generic over this catalogue.
 */
import { Schema } from "effect"
import { Uint64String } from "./ids.ts"
import { IsoDateTime } from "./isoDateTime.ts"

const Name = Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(200))
const Currency = Schema.String.check(Schema.isPattern(/^[A-Z]{3}$/, { description: "ISO 4217 currency code" }))

export const Advertiser = Schema.Struct({
  name: Name,
  domain: Schema.optionalKey(Schema.String.check(Schema.isMaxLength(253))),
  currency: Schema.optionalKey(Currency),
  status: Schema.optionalKey(Schema.Literals(["active", "paused", "archived"]))
}).annotate({ identifier: "Advertiser" })

export const Campaign = Schema.Struct({
  advertiserId: Uint64String,
  name: Name,
  budget: Schema.optionalKey(Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))),
  startsAt: Schema.optionalKey(IsoDateTime),
  endsAt: Schema.optionalKey(IsoDateTime),
  status: Schema.optionalKey(Schema.Literals(["draft", "active", "paused", "ended"]))
}).annotate({ identifier: "Campaign" })

export const Strategy = Schema.Struct({
  campaignId: Uint64String,
  name: Name,
  /** bid price per thousand impressions, in the advertiser's currency */
  bidPrice: Schema.Finite.check(Schema.isGreaterThan(0)),
  segmentIds: Schema.Array(Uint64String).check(Schema.isMaxLength(10_000))
}).annotate({ identifier: "Strategy" })

export interface EntityType {
  readonly name: string
  readonly id: Schema.Codec<string>
  readonly fields: Schema.Codec<Schema.JsonObject>
  readonly parent?: { readonly type: string; readonly field: string }
}

const entityType = (definition: {
  readonly name: string
  readonly id: Schema.Codec<string>
  readonly fields: Schema.Top
  readonly parent?: { readonly type: string; readonly field: string }
}): EntityType => definition as EntityType

export const entityTypes: ReadonlyMap<string, EntityType> = new Map(
  [
    entityType({ name: "advertiser", id: Uint64String, fields: Advertiser }),
    entityType({ name: "campaign", id: Uint64String, fields: Campaign, parent: { type: "advertiser", field: "advertiserId" } }),
    entityType({ name: "strategy", id: Uint64String, fields: Strategy, parent: { type: "campaign", field: "campaignId" } })
  ].map((t) => [t.name, t])
)
