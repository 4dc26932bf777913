/**
 * Apps (issue 8): a mobile app whose SDK sends events (`POST /v1/apps/{app}/events`, an `app:<id>` key).
 * A record of the entity platform; its fields enrich every event of the app (publisher, category) through
 * the metadata cache fed from SNAPSHOTS (infra/events/metadataCache.ts).
 */
import { Schema } from "effect"
import { Uint64String } from "../ids.ts"
import { Name } from "./fields.ts"
import { recordDecider } from "./record.ts"

/** A dimension value of every event of the app: short text, like the SDK's dimensions. */
const DimText = Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(128))

export const App = Schema.Struct({
  name: Name,
  publisher: DimText,
  category: DimText
}).annotate({ identifier: "App" })
export type App = typeof App.Type

export const app = recordDecider({ type: "app", id: Uint64String, fields: App })
