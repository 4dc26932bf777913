/**
 * Enrichment (issue 8 item 4): clean events and ended sessions get the app's metadata (`appName`,
 * dims `publisher`, `category`) and, for ad events, the campaign's advertiser (dim `advertiserId`),
 * through the metadata cache (domain/events/Metadata.ts). Looked up once per app and per distinct campaign of a batch.
 */
import { Effect, Option } from "effect"
import type { CleanEvent } from "../../domain/events/CleanEvent.ts"
import type { AppMeta, Metadata } from "../../domain/events/Metadata.ts"

/** What enrichment needs of the metadata cache (domain/events/Metadata.ts). */
export type MetadataLookups = Pick<Metadata["Service"], "app" | "campaign">

type Dims = CleanEvent["dims"]

/**
 * The metadata of an app (undefined when it is unknown). A failed lookup fails the batch, which is
 * not committed and comes again once the pipeline restarts: an event is never published unenriched
 * because the cache could not be reached.
 */
export const appDims = (lookups: MetadataLookups, app: string) => lookups.app(app).pipe(Effect.map(Option.getOrUndefined))

/** Advertiser ids of the campaigns named (absent: unknown campaign). */
export const advertisers = (lookups: MetadataLookups, campaignIds: ReadonlySet<string>) =>
  Effect.forEach([...campaignIds], (id) =>
    lookups.campaign(id).pipe(Effect.map((found) => [id, Option.getOrUndefined(found)?.advertiserId] as const)), { concurrency: 8 }).pipe(
      Effect.map((pairs) => new Map(pairs))
    )

/** `dims` with the app's publisher and category and, when known, the advertiser. */
export const enrichDims = (dims: Dims, app: AppMeta | undefined, advertiserId: string | undefined): Dims => ({
  ...dims,
  ...(app?.publisher === undefined ? {} : { publisher: app.publisher }),
  ...(app?.category === undefined ? {} : { category: app.category }),
  ...(advertiserId === undefined ? {} : { advertiserId })
})
