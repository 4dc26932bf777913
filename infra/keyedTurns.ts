/**
 * Turns per key: at most `permits` holders of one key at a time, the others waiting in order. A key's
 * entry lives only while a turn of it is held or waited for, so keys that come and go (addresses,
 * destination ids) leave nothing behind.
 */
import { Effect, Semaphore } from "effect"

export const makeKeyedTurns = (permits: number) => {
  const turns = new Map<string, { readonly semaphore: Semaphore.Semaphore; users: number }>()

  /** Waits for a turn of `key`; answers what gives it back, to run once. */
  const take = (key: string): Effect.Effect<Effect.Effect<void>> =>
    Effect.suspend(() => {
      let turn = turns.get(key)
      if (turn === undefined) turns.set(key, turn = { semaphore: Semaphore.makeUnsafe(permits), users: 0 })
      const mine = turn
      mine.users++
      const leave = Effect.sync(() => {
        if (--mine.users === 0) turns.delete(key)
      })
      return mine.semaphore.take(1).pipe(
        Effect.onInterrupt(() => leave),
        Effect.as(Effect.andThen(mine.semaphore.release(1), leave))
      )
    })

  /** Runs `effect` in a turn of `key`. */
  const inTurn = <A, E, R>(key: string, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.acquireUseRelease(take(key), () => effect, (release) => release)

  return { take, inTurn }
}
