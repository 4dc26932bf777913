/**
 * The partner an ingestion request names: it must exist (an entity of type `partner`) and, to take new
 * data, not be paused. Read from the event store (never older than an acknowledged write), so a
 * partner created or paused a moment ago is seen at once.
 */
import { Effect, Option, Schema } from "effect"
import { getEntity } from "../../projections/EntityQueries.ts"
export { PartnerId } from "../../domain/entities/partner.ts"
import { NotFound } from "../problems.ts"

/** The partner is paused: it takes no new data until it is active again. */
export class PartnerPaused extends Schema.TaggedError<PartnerPaused>()("PartnerPaused", { partner: Schema.String }) {}

/** What the doors need of a partner's state. */
export interface PartnerView {
  readonly paused: boolean
  /** whether it has a format spec (a body in "its format" can be translated) */
  readonly hasFormatSpec: boolean
}

/** The partner, or NotFound. */
export const findPartner = (id: string) =>
  Effect.flatMap(getEntity("partner", id), (found) =>
    Option.match(found, {
      onNone: () => Effect.fail(new NotFound({ detail: `partner ${id} does not exist` })),
      onSome: (entity): Effect.Effect<PartnerView> =>
        Effect.succeed({ paused: entity.state?.status === "paused", hasFormatSpec: entity.state?.formatSpec != null })
    }))

/** The partner, if it exists and is not paused (NotFound, PartnerPaused). */
export const activePartner = (id: string) =>
  Effect.flatMap(findPartner(id), (partner) => partner.paused ? Effect.fail(new PartnerPaused({ partner: id })) : Effect.succeed(partner))
