/**
 * Refresh packages on request (issue 9): `POST /v1/destinations/{id}/refresh` writes every current
 * member of the destination's segments, as `add` records, to the packages' outbox in the same
 * transaction as the continuous changes' position, so on DELIVER the refresh sits between the changes
 * before it and those after it (a later remove never overtakes its add). Answered 202 once the
 * package is durably in `delivery.db`; the publisher moves it to DELIVER. 503 (Retry-After 1) while
 * packaging has not seen the destination's last change (it follows the event store: a destination just
 * created may take a moment), 404 when there is no such destination.
 * Refused (503 + Retry-After) while the destination already has more than `maxBacklog` records waiting,
 * in the outbox (held at its lane barrier, say) and on DELIVER: refreshes sent faster than the partner
 * takes them would only pile up, without bound.
 */
import { Effect, Option, Schema } from "effect"
import { DeliveryPackages, lastPackagedEvent, RefreshAccepted } from "../../projections/delivery/packages.ts"
import { waitingFor } from "../../domain/delivery/DeliveryBacklog.ts"
import { Overloaded, problemResponse } from "../problems.ts"
import { route } from "../route.ts"
import type { SharedTurns } from "../../infra/nats/sharedTurns.ts"

/** A destination id: a lowercase slug, as its entity's. */
const DestinationId = Schema.String.check(Schema.isPattern(/^[a-z][a-z0-9-]{0,62}$/, {
  description: "a lowercase slug: a letter, then letters, digits and dashes (at most 63)"
}))

/** The turn a destination's refreshes and changes of its segments take, in whichever processes they land. */
export const refreshTurn = (destination: string) => `refresh.${destination}`

/** A turn of `name` among every process, or 503 when other requests held it all through the wait. */
export const takeTurn = (turns: SharedTurns, name: string) =>
  turns.take(name).pipe(Effect.catchTag("TurnBusy", () =>
    Effect.fail(new Overloaded({ detail: `other requests held the turn ${name} for 10 s; send it again`, retryAfterSeconds: 1 }))))

/**
 * Refuses (503) what would add a package for `destination` while more than `maxBacklog` of its records
 * wait, in the outbox and on DELIVER: a refresh asked for, or a change of its segments (which packages
 * every member of a segment added). Before stop 28 only the refresh route checked it, and toggling a
 * destination's segments took its backlog to 3.6 times the bound (909 MB of delivery.db).
 */
export const refusedOverBacklog = (destination: string, maxBacklog: number, what: string) =>
  Effect.gen(function*() {
    const { records } = yield* waitingFor(destination, (yield* DeliveryPackages).waiting)
    if (records > maxBacklog) {
      return yield* new Overloaded({
        detail: `destination ${destination} has ${records} records waiting in the package outbox and on DELIVER (more than DELIVERY_REFRESH_MAX_BACKLOG, ${maxBacklog}, the lowest of the live processes'): ${what} once it drains`,
        retryAfterSeconds: 60
      })
    }
  })

/**
 * While a change of the destination is not packaged yet, the backlog does not show what it will add: a
 * change of its segments, or a refresh, is refused (503) until it is, or changes sent one after another would all pass
 * a bound checked before any of them was packaged. `revision`: the destination's now, if known (else its
 * history is read). Compared by revision, not by the segments packaging
 * holds: a change there and back again, both landing before packaging saw either, leaves the segments as
 * packaged and two packages on their way (stop 29's outside attack: a backlog of 1,250 against 100).
 */
export const refusedWhilePackaging = (destination: string, revision?: number) =>
  Effect.gen(function*() {
    const packaged = yield* (yield* DeliveryPackages).packagedRevision(destination)
    if (revision !== undefined && Option.isSome(packaged) && packaged.value >= revision) return
    // packaging behind the entity: by an event it packages, or by others it skipped before stop 29 only?
    const changed = yield* lastPackagedEvent(destination)
    if (Option.isSome(changed) && (Option.isNone(packaged) || packaged.value < changed.value)) {
      return yield* new Overloaded({
        detail: `destination ${destination}: its last change (revision ${changed.value}) is still being packaged, and its backlog does not show what it adds yet; send this again once it is`,
        retryAfterSeconds: 1
      })
    }
  })

/** `maxBacklog`: DELIVERY_REFRESH_MAX_BACKLOG, the lowest of the live processes' (Cluster.strictest) */
export const deliveryPackageRoutes = (options: { readonly maxBacklog: Effect.Effect<number>; readonly turns: SharedTurns }) => {
  return [
    route({
      method: "POST", url: "/v1/destinations/:id/refresh", tags: ["delivery"], roles: ["service"], admission: "commands",
      summary: "Send every current member of the destination's segments again, as add records (a refresh package)",
      params: Schema.Struct({ id: DestinationId }),
      responses: {
        202: { description: "the refresh package is stored and will be published to DELIVER in order", schema: RefreshAccepted },
        400: problemResponse("invalid destination id (problem+json naming the field)"),
        401: problemResponse("missing or unknown API key"),
        403: problemResponse("the key's role may not refresh destinations"),
        404: problemResponse("no such destination"),
        503: problemResponse("the destination's backlog (outbox and DELIVER) is over DELIVERY_REFRESH_MAX_BACKLOG, its last change is not packaged yet, too many commands in progress, or the packages' store is unavailable; see Retry-After")
      },
      handler: ({ params }) =>
        // One refresh or change of segments of a destination at a time, in whichever processes they land:
        // two checked at once would both pass the bound. A change answered before is waited for until it is
        // packaged, so that the backlog shows what it adds (stop 30's attack: a refresh beside a change
        // took a backlog bound at 500 to 900).
        Effect.acquireUseRelease(takeTurn(options.turns, refreshTurn(params.id)), () =>
          Effect.gen(function*() {
            yield* refusedWhilePackaging(params.id)
            yield* refusedOverBacklog(params.id, yield* options.maxBacklog, "refresh")
            const accepted = yield* DeliveryPackages.use((packages) => packages.refresh(params.id))
            return { status: 202, body: accepted }
          }), (turn) => turn.release)
    })
  ]
}
