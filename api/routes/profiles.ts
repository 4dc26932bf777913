/**
 * A user's profile: `GET /v1/profiles/{kind}/{userId}` — the segments the user is in now (folded from
 * the event store: never older than an acknowledged record), or at `asOf`; with `explain=true`, the
 * partner file line that set each (partner, job, line) and, per destination, the latest delivery of it
 * (from the receipts: projections/delivery/receipts.ts). `asOf` and `explain` are for auditors. The
 * user id is the raw one a partner sends: it is normalised for its kind, so `AB…` and `ab…` as mobile
 * ad ids find the same profile.
 */
import { Effect, Option, Result, Schema } from "effect"
import { ProfileSegment, userprofile } from "../../domain/entities/userprofile.ts"
import { IdKind, normalizeUserId, profileId } from "../../domain/ingest/LoaderRecord.ts"
import { Delivery, DeliveryReadModel } from "../../projections/delivery/receipts.ts"
import { getEntity } from "../../projections/EntityQueries.ts"
import { Forbidden, InvalidRequest, NotFound, problemResponse } from "../problems.ts"
import { route } from "../route.ts"
import { IsoTimestamp } from "./params.ts"

export const Profile = Schema.Struct({
  idKind: IdKind,
  userId: Schema.String,
  revision: Schema.Int,
  segments: Schema.Array(Schema.Struct({
    ...ProfileSegment.fields,
    /** explain: the latest delivery of the segment's membership to each destination that received it */
    deliveries: Schema.optionalKey(Schema.Array(Delivery))
  }))
}).annotate({ identifier: "Profile" })

const Params = Schema.Struct({ kind: IdKind, userId: Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(1_024)) })
const Query = Schema.Struct({
  asOf: Schema.optionalKey(IsoTimestamp),
  explain: Schema.optionalKey(Schema.Literals(["true", "false"]))
})

type Segment = typeof ProfileSegment.Type

export const profileRoutes = [
  route({
    method: "GET", url: "/v1/profiles/:kind/:userId", tags: ["profiles"], roles: ["service", "auditor"], admission: "reads",
    summary: "A user's segments now (or at asOf, auditor); explain=true (auditor) names the partner file line that set each and its latest delivery to each destination",
    params: Params, query: Query,
    responses: {
      200: { description: "the profile", schema: Profile },
      400: problemResponse("invalid kind, user id or query (problem+json naming the field)"),
      401: problemResponse("missing or unknown API key"),
      403: problemResponse("the key's role may not do this (asOf and explain are for auditors)"),
      404: problemResponse("no record was ever applied to this user (at asOf)"),
      503: problemResponse("too many reads in progress, or a dependency is down; see Retry-After")
    },
    handler: ({ params, principal, query }) =>
      Effect.gen(function*() {
        const explain = query.explain === "true"
        if ((query.asOf !== undefined || explain) && principal.role === "service") {
          return yield* new Forbidden({ detail: "asOf and explain are for auditors" })
        }
        const normal = normalizeUserId(params.kind, params.userId)
        if (Result.isFailure(normal)) {
          return yield* new InvalidRequest({ issues: [{ in: "path", path: ["userId"], message: normal.failure }] })
        }
        const found = yield* getEntity(userprofile.type, profileId(params.kind, normal.success), query.asOf)
        if (Option.isNone(found)) {
          return yield* new NotFound({ detail: `no profile for ${params.kind} ${normal.success}${query.asOf === undefined ? "" : ` at ${query.asOf}`}` })
        }
        const segments = (found.value.state as { readonly segments: ReadonlyArray<Segment> }).segments
        const deliveries = explain ? yield* (yield* DeliveryReadModel).deliveriesOf(found.value.id) : new Map<string, never>()
        return {
          status: 200,
          body: {
            idKind: params.kind,
            userId: normal.success,
            revision: found.value.revision,
            segments: explain
              ? segments.map((segment) => ({ ...segment, deliveries: deliveries.get(segment.segmentId) ?? [] }))
              : segments.map(({ sources: _sources, ...segment }) => segment)
          }
        }
      })
  })
]
