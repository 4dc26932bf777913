/**
 * What the translator needs of a partner, read from its entity when a job starts (so a changed
 * format spec or segment map applies from the partner's next job on): how its files translate, its
 * default membership TTL, and whether a file is incremental or a full replacement.
 */
import { Effect, Option, Schema } from "effect"
import { Partner, partnerConfigOf } from "../../domain/entities/partner.ts"
import { getEntity } from "../../projections/EntityQueries.ts"
import type { Translation } from "./Translate.ts"

export interface PartnerSettings {
  /** whether the partner's entity exists (not deleted) */
  readonly exists: boolean
  /** how the partner's own format translates; none when it has no format spec (or no entity) */
  readonly translation: Translation | undefined
  /** why there is no translation, for the job's report */
  readonly missing?: string | undefined
  readonly defaultTtlSeconds: number | undefined
  readonly mode: "incremental" | "replace"
  /** the segments its loader records may name; absent: any */
  readonly allowedSegments?: ReadonlySet<string> | undefined
}

export const partnerType = "partner"

const decodePartner = Schema.decodeUnknownOption(Partner)

export const readPartnerSettings = (partner: string) =>
  Effect.gen(function*() {
    const state = Option.flatMap(yield* getEntity(partnerType, partner), (snapshot) => decodePartner(snapshot.state, { onExcessProperty: "ignore" }))
    if (Option.isNone(state)) {
      return { exists: false, translation: undefined, missing: `partner ${partner} does not exist`, defaultTtlSeconds: undefined, mode: "incremental" } satisfies PartnerSettings
    }
    const config = partnerConfigOf(state.value)
    return {
      exists: true,
      translation: Option.isSome(config) ? { format: "partner", partner: config.value } : undefined,
      missing: Option.isSome(config) ? undefined : `partner ${partner} has no format spec: send loader-format JSON Lines`,
      defaultTtlSeconds: state.value.defaultTtlSeconds,
      mode: state.value.formatSpec?.mode ?? "incremental",
      allowedSegments: state.value.allowedSegments === undefined ? undefined : new Set(state.value.allowedSegments)
    } satisfies PartnerSettings
  })
