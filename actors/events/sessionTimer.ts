/**
 * The sessions timer of a device pipeline: every `every` of the Clock (so TestClock drives it in
 * tests) it offers the server time, at which the pipeline ends the sessions idle for the inactivity
 * time (domain/events/sessions.ts `expire`).
 */
import { Clock, Effect } from "effect"
import type { Duration } from "effect"

export const sessionTicks = <E, R>(every: Duration.Input, offer: (now: number) => Effect.Effect<void, E, R>) =>
  Effect.forever(Effect.gen(function*() {
    yield* Effect.sleep(every)
    yield* offer(yield* Clock.currentTimeMillis)
  }))
