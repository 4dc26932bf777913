/**
 * The dimensions of app events (issue 8): what a metrics query may group or filter by (`groupBy`,
 * `filter`). The SDK's own (`dims`), the enriched ones (domain/events/CleanEvent.ts), and the event's
 * type and ad ids. No imports: the rollups' threads load it too.
 */
export const dimensions = [
  "platform", "osVersion", "appVersion", "model", "country", "carrier",
  "publisher", "category", "campaignId", "creativeId", "advertiserId", "type"
] as const
export type Dimension = (typeof dimensions)[number]
