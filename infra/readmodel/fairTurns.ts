/**
 * One turn at a time, taken in rotation among callers (an API key, a tenant): the next turn goes to the
 * caller waiting longest among those other than the one just served, so a caller with many waiting gets
 * its next turn only once every other caller waiting has had one. Bounded: at most `maxWaiting` wait in
 * all and `maxPerCaller` of one caller; past them a turn is refused at once (TurnsFull). A waiter that
 * goes away (interrupted) takes its place with it, and passes the turn on if it had just been given it.
 *
 * Why: the rollups' reader runs one metrics query at a time. Taken in arrival order, one key's 30 heavy
 * queries at once made another tenant's light query wait 7–20 s, or be refused (stop 26's outside attack).
 */
import { Deferred, Effect, Exit, Schema } from "effect"

export class TurnsFull extends Schema.TaggedError<TurnsFull>()("TurnsFull", {
  /** turns waiting when this one was refused */
  waiting: Schema.Number
}) {}

export interface FairTurnsOptions {
  readonly maxWaiting: number
  readonly maxPerCaller: number
}

export interface FairTurns {
  /** Runs `effect` in a turn of `caller`'s, once it comes; TurnsFull when the bounds are reached. */
  readonly run: <A, E, R>(caller: string, effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | TurnsFull, R>
}

export const makeFairTurns = (options: FairTurnsOptions): FairTurns => {
  /** each caller's waiters, in order; callers in the order their first waiter came */
  const lines = new Map<string, Array<Deferred.Deferred<void>>>()
  let held = false
  let lastServed: string | undefined
  let waiting = 0

  const pass = () => {
    let chosen: string | undefined
    for (const caller of lines.keys()) {
      if (chosen === undefined) chosen = caller
      if (caller !== lastServed) {
        chosen = caller
        break
      }
    }
    if (chosen === undefined) {
      held = false
      return
    }
    const line = lines.get(chosen)!
    const turn = line.shift()!
    // served: behind every other caller waiting
    lines.delete(chosen)
    if (line.length > 0) lines.set(chosen, line)
    waiting--
    lastServed = chosen
    Deferred.doneUnsafe(turn, Exit.void)
  }

  /** Takes `turn` out of its line; false when it is no longer there (it was given the turn). */
  const leave = (caller: string, turn: Deferred.Deferred<void>) => {
    const line = lines.get(caller)
    const at = line?.indexOf(turn) ?? -1
    if (line === undefined || at < 0) return false
    line.splice(at, 1)
    if (line.length === 0) lines.delete(caller)
    waiting--
    return true
  }

  const acquire = (caller: string) =>
    Effect.suspend(() => {
      if (!held) {
        held = true
        lastServed = caller
        return Effect.void
      }
      if (waiting >= options.maxWaiting || (lines.get(caller)?.length ?? 0) >= options.maxPerCaller) {
        return Effect.fail(new TurnsFull({ waiting }))
      }
      const turn = Deferred.makeUnsafe<void>()
      const line = lines.get(caller)
      if (line === undefined) lines.set(caller, [turn])
      else line.push(turn)
      waiting++
      return Deferred.await(turn).pipe(Effect.onInterrupt(() => Effect.sync(() => void (leave(caller, turn) || pass()))))
    })

  return {
    run: (caller, effect) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(restore(acquire(caller)), () => restore(effect).pipe(Effect.ensuring(Effect.sync(pass)))))
  }
}
