/**
 * The metadata events are enriched with (issue 8, item 4): an app's name, publisher and category (the
 * `app` entity), and an ad event's campaign's advertiser (the `campaign` entity). A port: the device
 * pipeline enriches through it and the intake checks that an app exists through it; infra/events/
 * metadataCache.ts implements it as an in-process cache fed from SNAPSHOTS, so a change is seen
 * within a second and concurrent misses for one key load it once.
 */
import { Context, Schema } from "effect"
import type { Effect, Option } from "effect"

/** What events take from their app. */
export const AppMeta = Schema.Struct({
  name: Schema.String,
  publisher: Schema.String,
  category: Schema.String
}).annotate({ identifier: "AppMeta" })
export type AppMeta = typeof AppMeta.Type

/** What an ad event takes from its campaign. */
export const CampaignMeta = Schema.Struct({
  advertiserId: Schema.String,
  name: Schema.optionalKey(Schema.String)
}).annotate({ identifier: "CampaignMeta" })
export type CampaignMeta = typeof CampaignMeta.Type

/** Loading metadata failed (the bus is unreachable): the caller retries, nothing is guessed. */
export class MetadataError extends Schema.TaggedError<MetadataError>()("MetadataError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {}

/** Lookups answered from memory (hits) and lookups that loaded (misses), since the process started. */
export interface MetadataStats {
  readonly hits: number
  readonly misses: number
}

export class Metadata extends Context.Service<Metadata, {
  /** The app's metadata; none when the app does not exist (or was deleted). */
  readonly app: (appId: string) => Effect.Effect<Option.Option<AppMeta>, MetadataError>
  /** The campaign's metadata; none when the campaign does not exist (or was deleted). */
  readonly campaign: (campaignId: string) => Effect.Effect<Option.Option<CampaignMeta>, MetadataError>
  /** hits and misses so far (also on /metrics as tributary_metadata_cache_{hits,misses}_total) */
  readonly stats: Effect.Effect<MetadataStats>
}>()("tributary/events/Metadata") {}

/** The hit rate of `stats` (1 when nothing was asked yet). */
export const hitRate = (stats: MetadataStats): number => {
  const total = stats.hits + stats.misses
  return total === 0 ? 1 : stats.hits / total
}
