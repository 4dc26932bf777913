/**
 * Turns per key: at most `permits` effects of one key run at a time, the others waiting in order. A
 * key's entry lives only while an effect holds or waits for one of its turns, so keys that come and go
 * (addresses, destination ids) leave nothing behind.
 */
import { Effect, Semaphore } from "effect"

export const makeKeyedTurns = (permits: number) => {
  const turns = new Map<string, { readonly semaphore: Semaphore.Semaphore; users: number }>()
  return <A, E, R>(key: string, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.suspend(() => {
      let turn = turns.get(key)
      if (turn === undefined) turns.set(key, turn = { semaphore: Semaphore.makeUnsafe(permits), users: 0 })
      const mine = turn
      mine.users++
      return mine.semaphore.withPermits(1)(effect).pipe(Effect.ensuring(Effect.sync(() => {
        if (--mine.users === 0) turns.delete(key)
      })))
    })
}
