/**
 * What the translator needs of a partner, read from its entity when a job starts (so a changed
 * format spec or segment map applies from the partner's next job on): how its files translate, its
 * default membership TTL, and whether a file is incremental or a full replacement.
 */
import { Effect, Option, Schema } from "effect"
import { getEntity } from "../../projections/EntityQueries.ts"
import type { Translation } from "./Translate.ts"

export interface PartnerSettings {
  /** how the partner's own format translates; none when it has no format spec (or no entity) */
  readonly translation: Translation | undefined
  /** why there is no translation, for the job's report */
  readonly missing?: string | undefined
  readonly defaultTtlSeconds: number | undefined
  readonly mode: "incremental" | "replace"
}

/** The fields of the partner entity's public state the translator reads; the rest is the format's business. */
const PartnerState = Schema.Struct({
  formatSpec: Schema.optionalKey(Schema.Struct({ mode: Schema.optionalKey(Schema.Literals(["incremental", "replace"])) })),
  segmentMap: Schema.optionalKey(Schema.Record(Schema.String, Schema.String)),
  defaultTtlSeconds: Schema.optionalKey(Schema.Int)
})
const decodeState = Schema.decodeUnknownOption(PartnerState)

export const partnerType = "partner"

export const readPartnerSettings = (partner: string) =>
  Effect.gen(function*() {
    const entity = yield* getEntity(partnerType, partner)
    const state = Option.flatMap(entity, (snapshot) => decodeState(snapshot.state, { onExcessProperty: "ignore" }))
    if (Option.isNone(state)) {
      return { translation: undefined, missing: `partner ${partner} does not exist`, defaultTtlSeconds: undefined, mode: "incremental" } satisfies PartnerSettings
    }
    const { formatSpec, segmentMap, defaultTtlSeconds } = state.value
    const raw = Option.getOrThrow(entity).state as Record<string, unknown>
    return {
      translation: formatSpec === undefined
        ? undefined
        : { format: "partner", partner: { formatSpec: raw.formatSpec, ...(segmentMap === undefined ? {} : { segmentMap }), ...(defaultTtlSeconds === undefined ? {} : { defaultTtlSeconds }) } } as Translation,
      missing: formatSpec === undefined ? `partner ${partner} has no format spec: send loader-format JSON Lines` : undefined,
      defaultTtlSeconds,
      mode: formatSpec?.mode ?? "incremental"
    } satisfies PartnerSettings
  })
