/**
 * DELIVERY_MAX_LANES: the lanes of all destinations together, at most. Each lane is a deliverer with its
 * own consumer on DELIVER, lease and timers, which cost CPU even while it has nothing to send (~0.045% of
 * a core and 0.018% of nats-server's a lane: 800 idle lanes took 36% and 15%, stop 28's outside attack),
 * so a key that may write destinations could otherwise take the machine with thousands of them.
 *
 * Checked when a write adds lanes (a destination created, or its `lanes` raised): past the bound, 409
 * naming `lanes`. A write that keeps or lowers them passes, even over a bound lowered since. The
 * writes adding lanes go one at a time, in whichever processes they land (a turn shared by all:
 * infra/nats/sharedTurns.ts), each holding its turn from its check until the read model's list shows
 * what it did (or its refusal), so the next is checked against it; a refused request counts for nothing.
 * A write that gets no turn within 10 s answers 503 with Retry-After. What it adds is also reserved
 * (infra/nats/reservations.ts) until the list shows it, so a process that dies holding the turn leaves
 * its command counted until that command can no longer land (its deadline, the turn's end at most, and 10 s).
 */
import { Clock, Effect, Option, Schedule } from "effect"
import type { Reservations } from "../../infra/nats/reservations.ts"
import type { SharedTurns } from "../../infra/nats/sharedTurns.ts"
import { destination as destinationType } from "../../domain/entities/destination.ts"
import { lanesByDestination } from "../../projections/delivery/destinationLanes.ts"
import { EntityReadModel } from "../../projections/EntityReadModel.ts"
import { LimitReached, Overloaded } from "../problems.ts"
import { takeTurn } from "./deliveryPackages.ts"

/** How long an accepted write waits for the read model's list to show it, at most, before the next is checked. */
const listedWithin = "5 seconds"

/**
 * Until the read model holds `destination` at `revision` or later (none: gone), checked every 20 ms
 * for `listedWithin` at most; its failures are given up on (the next write is then checked against the list as it is).
 */
export const listed = (destination: string, revision: Option.Option<number>) =>
  EntityReadModel.use((model) => model.get(destinationType.type, destination)).pipe(
    Effect.flatMap((found) => {
      const shown = Option.isNone(revision) ? Option.isNone(found) || found.value.state === null : Option.isSome(found) && found.value.revision >= revision.value
      return shown ? Effect.void : Effect.fail("not yet" as const)
    }),
    Effect.retry(Schedule.spaced("20 millis")),
    Effect.timeout(listedWithin),
    Effect.ignore
  )

/** Past a command's deadline, how long a reservation still counts: the read model's lag, and clocks that disagree. */
const listingMarginMillis = 10_000

/** `bound`: DELIVERY_MAX_LANES, the lowest of the live processes' (Cluster.strictest), read in the turn */
export const makeLaneQuota = (bound: Effect.Effect<number>, { turns, reservations, commandTimeoutMillis }: {
  readonly turns: SharedTurns
  readonly reservations: Reservations
  readonly commandTimeoutMillis: number
}) => {
  /**
   * Checks that `destination` may go from `before` lanes to `lanes`: when that adds, takes the platform's
   * turn, and answers what gives it back once the write is answered (after the list shows an accepted one)
   * and the deadline its command must carry: while the turn is surely this process's, so that a command
   * sent after a pause past it expires rather than lands beside what the next holder let through.
   */
  const reserve = (destination: string, lanes: number, before: number) =>
    Effect.gen(function*() {
      if (lanes <= before) return undefined
      const turn = yield* takeTurn(turns, "lanes")
      const counted = Effect.gen(function*() {
        const maxLanes = yield* bound
        const now = yield* Clock.currentTimeMillis
        const deadline = Math.min(turn.until, now + commandTimeoutMillis)
        // what the list shows, or what a write not listed yet reserved (its writer may have died): the more
        const all = new Map(yield* lanesByDestination)
        for (const [id, reserved] of yield* reservations.held("lanes", now)) all.set(id, Math.max(all.get(id) ?? 0, reserved))
        let others = 0
        for (const [id, count] of all) if (id !== destination) others += count
        if (others + lanes <= maxLanes) yield* reservations.hold("lanes", destination, lanes, deadline + listingMarginMillis)
        return { others, deadline, maxLanes }
      })
      const { deadline, others, maxLanes } = yield* Effect.onError(counted, () => turn.release).pipe(Effect.catchTag("NatsError", () =>
        Effect.fail(new Overloaded({ detail: "the lanes other writes reserved could not be read; send it again", retryAfterSeconds: 1 }))))
      if (others + lanes > maxLanes) {
        yield* turn.release
        const message = `destinations have at most ${maxLanes} lanes in all (DELIVERY_MAX_LANES, the lowest of the live processes'); the others have ${others}, so this one may have at most ${Math.max(0, maxLanes - others)}`
        return yield* new LimitReached({ detail: message, issues: [{ path: ["lanes"], message }] })
      }
      const settled = (accepted: Option.Option<number>) =>
        (Option.isSome(accepted) ? listed(destination, accepted) : Effect.void).pipe(
          Effect.andThen(Effect.ignore(reservations.release("lanes", destination))),
          Effect.ensuring(turn.release)
        )
      return { settled, deadline }
    })

  return { reserve }
}
