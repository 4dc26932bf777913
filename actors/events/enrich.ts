/**
 * Enrichment (issue 8 item 4): clean events and ended sessions get the app's metadata (`appName`,
 * dims `publisher`, `category`) and, for ad events, the campaign's advertiser (dim `advertiserId`),
 * through the metadata cache's port. Looked up once per app and per distinct campaign of a batch.
 */
import { Effect, Option } from "effect"
import type { CleanEvent } from "../../domain/events/CleanEvent.ts"

export interface AppMetadata {
  readonly name: string
  readonly publisher?: string | undefined
  readonly category?: string | undefined
}

/** The metadata cache's shape (domain/events/Metadata.ts): what enrichment needs of it. */
export interface MetadataLookups {
  readonly app: (appId: string) => Effect.Effect<Option.Option<AppMetadata>, unknown>
  readonly campaign: (campaignId: string) => Effect.Effect<Option.Option<{ readonly advertiserId: string }>, unknown>
}

/** No metadata: events flow unenriched (until a cache is wired). */
export const noMetadata: MetadataLookups = {
  app: () => Effect.succeedNone,
  campaign: () => Effect.succeedNone
}

type Dims = CleanEvent["dims"]

/** The enriched dims of an app (none when its metadata is unknown or the lookup failed). */
export const appDims = (lookups: MetadataLookups, app: string) =>
  lookups.app(app).pipe(
    Effect.map(Option.getOrUndefined),
    Effect.catch((error) => Effect.as(Effect.logWarning("app metadata lookup failed; events go unenriched", { app, error }), undefined))
  )

/** Advertiser ids of the campaigns named (absent: unknown campaign). */
export const advertisers = (lookups: MetadataLookups, campaignIds: ReadonlySet<string>) =>
  Effect.forEach([...campaignIds], (id) =>
    lookups.campaign(id).pipe(
      Effect.map((found) => [id, Option.getOrUndefined(found)?.advertiserId] as const),
      Effect.catch(() => Effect.succeed([id, undefined] as const))
    ), { concurrency: 8 }).pipe(Effect.map((pairs) => new Map(pairs)))

/** `dims` with the app's publisher and category and, when known, the advertiser. */
export const enrichDims = (dims: Dims, app: AppMetadata | undefined, advertiserId: string | undefined): Dims => ({
  ...dims,
  ...(app?.publisher === undefined ? {} : { publisher: app.publisher }),
  ...(app?.category === undefined ? {} : { category: app.category }),
  ...(advertiserId === undefined ? {} : { advertiserId })
})
