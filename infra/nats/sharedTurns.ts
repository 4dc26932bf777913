/**
 * Turns shared by every process of the platform, per name: a turn is the lease `turn.<name>` in the
 * leases bucket (infra/nats/lease.ts), asked for every 25 ms while another process holds it, renewed
 * while held and given back by the release `take` answers. The callers of one process queue in memory
 * first (infra/keyedTurns.ts), so a process asks for a name's lease once at a time. A holder that dies
 * loses its turn when the entry expires (10 s), or at once to a process of its own host. For the bounds
 * that requests must not pass together in whichever processes they land: DELIVERY_MAX_LANES, and
 * DELIVERY_REFRESH_MAX_BACKLOG (stop 29 held them in each process alone: two processes at once passed
 * the lanes' bound, 35 lanes against 20).
 */
import { Data, Duration, Effect, Fiber, Option, Schedule } from "effect"
import { BucketNames } from "../../domain/subjects.ts"
import { makeKeyedTurns } from "../keyedTurns.ts"
import { openBucket } from "./buckets.ts"
import { newHolderId, renewEveryMillis, takeLease } from "./lease.ts"

/** No turn of `name` came within the wait: other processes held it all along, or the bucket did not answer. */
export class TurnBusy extends Data.TaggedError("TurnBusy")<{ readonly name: string }> {}

export const turnLeaseKey = (name: string) => `turn.${name}`

export const makeSharedTurns = (waitAtMost: Duration.Input = "10 seconds") => Effect.gen(function*() {
  const kv = yield* openBucket(BucketNames.leases)
  const holder = newHolderId()
  const local = makeKeyedTurns(1)

  /** The lease of `name`, asked for until it comes or the wait is over; renewed until the answer gives it back. */
  const lease = (name: string) =>
    Effect.gen(function*() {
      const asked = Effect.flatMap(takeLease(kv, turnLeaseKey(name), holder), (taken) => Option.isSome(taken) ? Effect.succeed(taken.value) : Effect.fail("held" as const))
      const held = yield* asked.pipe(Effect.retry({ schedule: Schedule.spaced("25 millis"), while: (error) => error === "held" }))
      // A renewal refused (the entry expired while this process was paused) is let be: a turn is held for
      // seconds, and the next holder checks what the turn guards again.
      const renewing = yield* Effect.forkDetach(held.renew.pipe(Effect.delay(renewEveryMillis), Effect.forever, Effect.ignore))
      return Effect.andThen(Fiber.interrupt(renewing), held.release)
    }).pipe(
      Effect.timeoutOption(waitAtMost),
      Effect.catch(() => Effect.succeed(Option.none<Effect.Effect<void>>())),
      Effect.flatMap((held) => Option.isSome(held) ? Effect.succeed(held.value) : Effect.fail(new TurnBusy({ name })))
    )

  /** Takes a turn of `name` among every process; answers what gives it back, to run once. */
  const take = (name: string): Effect.Effect<Effect.Effect<void>, TurnBusy> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.gen(function*() {
        const leave = yield* restore(local.take(name))
        const release = yield* restore(lease(name)).pipe(Effect.onError(() => leave))
        return Effect.andThen(release, leave)
      }))

  /** Runs `effect` in a turn of `name` among every process. */
  const inTurn = <A, E, R>(name: string, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | TurnBusy, R> =>
    Effect.acquireUseRelease(take(name), () => effect, (release) => release)

  return { take, inTurn }
})

export type SharedTurns = Effect.Success<ReturnType<typeof makeSharedTurns>>
