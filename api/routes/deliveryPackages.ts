/**
 * Refresh packages on request (issue 9): `POST /v1/destinations/{id}/refresh` writes every current
 * member of the destination's segments, as `add` records, to the packages' outbox in the same
 * transaction as the continuous changes' position, so on DELIVER the refresh sits between the changes
 * before it and those after it (a later remove never overtakes its add). Answered 202 once the
 * package is durably in `delivery.db`; the publisher moves it to DELIVER. 404 while packaging has not
 * seen the destination (it follows the event store: a destination just created may take a moment).
 */
import { Effect, Schema } from "effect"
import { DeliveryPackages, RefreshAccepted } from "../../projections/delivery/packages.ts"
import { problemResponse } from "../problems.ts"
import { route } from "../route.ts"

/** A destination id: a lowercase slug, as its entity's. */
const DestinationId = Schema.String.check(Schema.isPattern(/^[a-z][a-z0-9-]{0,62}$/, {
  description: "a lowercase slug: a letter, then letters, digits and dashes (at most 63)"
}))

export const deliveryPackageRoutes = [
  route({
    method: "POST", url: "/v1/destinations/:id/refresh", tags: ["delivery"], roles: ["service"], admission: "commands",
    summary: "Send every current member of the destination's segments again, as add records (a refresh package)",
    params: Schema.Struct({ id: DestinationId }),
    responses: {
      202: { description: "the refresh package is stored and will be published to DELIVER in order", schema: RefreshAccepted },
      400: problemResponse("invalid destination id (problem+json naming the field)"),
      401: problemResponse("missing or unknown API key"),
      403: problemResponse("the key's role may not refresh destinations"),
      404: problemResponse("no such destination (or packaging has not seen it yet)"),
      503: problemResponse("too many commands in progress, or the packages' store is unavailable; see Retry-After")
    },
    handler: ({ params }) =>
      Effect.map(DeliveryPackages.use((packages) => packages.refresh(params.id)), (accepted) => ({ status: 202, body: accepted }))
  })
]
