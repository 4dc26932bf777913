/**
 * Turns shared by every process of the platform, per name: a turn is the lease `turn.<name>` in the
 * leases bucket (infra/nats/lease.ts), asked for every 25 ms while another process holds it, renewed
 * while held and given back by the release `take` answers. The callers of one process queue in memory
 * first (infra/keyedTurns.ts), so a process asks for a name's lease once at a time. A holder that dies
 * loses its turn when the entry expires (10 s), or at once to a process of its own host. A holder paused
 * past that (SIGSTOP, a stalled machine) may find its turn taken when it resumes, so a turn says until
 * when it is surely this process's (`until`): what it guards must not land later (a command's deadline;
 * stop 30's re-attack: a process paused 23 s between its check and its command made 11 lanes of 10). For the bounds
 * that requests must not pass together in whichever processes they land: DELIVERY_MAX_LANES, and
 * DELIVERY_REFRESH_MAX_BACKLOG (stop 29 held them in each process alone: two processes at once passed
 * the lanes' bound, 35 lanes against 20).
 */
import { Data, Duration, Effect, Fiber, Option, Schedule } from "effect"
import { BucketNames } from "../../domain/subjects.ts"
import { makeKeyedTurns } from "../keyedTurns.ts"
import { coordinationTtl, openBucket } from "./buckets.ts"
import { newHolderId, renewEveryMillis, takeLease } from "./lease.ts"

/** No turn of `name` came within the wait: other processes held it all along, or the bucket did not answer. */
export class TurnBusy extends Data.TaggedError("TurnBusy")<{ readonly name: string }> {}

export const turnLeaseKey = (name: string) => `turn.${name}`

/** A turn held: `release` gives it back (run it once); until `until` (epoch ms) no other process can have it. */
export interface Turn {
  readonly release: Effect.Effect<void>
  readonly until: number
}

export const makeSharedTurns = (waitAtMost: Duration.Input = "10 seconds") => Effect.gen(function*() {
  const kv = yield* openBucket(BucketNames.leases)
  const holder = newHolderId()
  const local = makeKeyedTurns(1)
  const ttlMillis = Duration.toMillis(coordinationTtl)

  /** The lease of `name`, asked for until it comes or the wait is over; renewed until the answer gives it back. */
  const lease = (name: string) =>
    Effect.gen(function*() {
      // the entry is written after this instant, so it lives at least the TTL past it, renewed or not
      let since = 0
      const asked = Effect.andThen(Effect.sync(() => void (since = Date.now())), takeLease(kv, turnLeaseKey(name), holder)).pipe(
        Effect.flatMap((taken) => Option.isSome(taken) ? Effect.succeed(taken.value) : Effect.fail("held" as const))
      )
      const held = yield* asked.pipe(Effect.retry({ schedule: Schedule.spaced("25 millis"), while: (error) => error === "held" }))
      // Renewed while held; a renewal refused (the entry expired while this process was paused) is let be:
      // what the turn guards ends by `until`, which a renewal does not move.
      const renewing = yield* Effect.forkDetach(held.renew.pipe(Effect.delay(renewEveryMillis), Effect.forever, Effect.ignore))
      return { release: Effect.andThen(Fiber.interrupt(renewing), held.release), until: since + ttlMillis } satisfies Turn
    }).pipe(
      Effect.timeoutOption(waitAtMost),
      Effect.catch(() => Effect.succeed(Option.none<Turn>())),
      Effect.flatMap((held) => Option.isSome(held) ? Effect.succeed(held.value) : Effect.fail(new TurnBusy({ name })))
    )

  /** Takes a turn of `name` among every process. */
  const take = (name: string): Effect.Effect<Turn, TurnBusy> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.gen(function*() {
        const leave = yield* restore(local.take(name))
        const turn = yield* restore(lease(name)).pipe(Effect.onError(() => leave))
        return { release: Effect.andThen(turn.release, leave), until: turn.until }
      }))

  return { take }
})

export type SharedTurns = Effect.Success<ReturnType<typeof makeSharedTurns>>
