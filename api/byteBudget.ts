import { Effect, Stream } from "effect"

/**
 * A bound on bytes held at once by the requests of one kind in a process (the app events' bodies:
 * EVENTS_INFLIGHT_MAX_BYTES; real-time records: REALTIME_INFLIGHT_MAX_BYTES), taken as a body's bytes
 * arrive and given back when its request ends, with a share for each owner (an app, a partner): no
 * owner holds more than `maxBytesPerOwner`, so one cannot take the whole bound from the others. Past
 * either, a request is refused (503 + Retry-After) rather than read on: before, found by an outside
 * attack, 80 gzipped bodies of 60 KB inflating to 8 MiB each, sent at once with one SDK key, took the
 * process to 5 GB of RSS and stalled its event loop until every lease lapsed; then four bodies of 8 MiB
 * sent at once and kept open a byte at a time held the whole bound for minutes, and every app was refused.
 */
export interface ByteBudget {
  /** Takes `bytes` for `owner` if they fit beside what is held, in all and by it; false if not (nothing taken). */
  readonly take: (owner: string, bytes: number) => boolean
  /** Gives back bytes `owner` took. */
  readonly give: (owner: string, bytes: number) => void
  readonly maxBytes: number
  readonly maxBytesPerOwner: number
  /** Why a body is refused, naming the setting and the bounds. */
  readonly refusal: string
}

/**
 * A budget of `maxBytes` (at least two largest bodies) of which one owner holds at most an eighth, and
 * never less than `largestBody` (so that each can send its largest body). Half, before the outside
 * attack of stop 20: two partners holding bodies open took all of it, and every other partner was refused.
 * `names` says what it holds (`real-time bodies`), its setting and what an owner is, for its refusal.
 */
export const makeByteBudget = (
  bytes: number,
  largestBody: number,
  names: { readonly what: string; readonly setting: string; readonly owner: string }
): ByteBudget => {
  const maxBytes = Math.max(bytes, 2 * largestBody)
  const maxBytesPerOwner = Math.min(maxBytes, Math.max(maxBytes / 8, largestBody))
  let held = 0
  const byOwner = new Map<string, number>()
  return {
    maxBytes,
    maxBytesPerOwner,
    refusal: `the ${names.what} this process is reading hold ${names.setting} (${maxBytes}, at most ${maxBytesPerOwner} for one ${names.owner}); retry later`,
    take: (owner, bytes) => {
      const own = byOwner.get(owner) ?? 0
      if (held + bytes > maxBytes || own + bytes > maxBytesPerOwner) return false
      held += bytes
      byOwner.set(owner, own + bytes)
      return true
    },
    give: (owner, bytes) => {
      if (bytes === 0) return
      held -= bytes
      const own = (byOwner.get(owner) ?? 0) - bytes
      if (own <= 0) byOwner.delete(owner)
      else byOwner.set(owner, own)
    }
  }
}

/**
 * Runs `use` on `body` with its bytes taken from `budget` for `owner` as they arrive (failing with
 * `refused()` once the budget or the owner's share is spent), and gives them back when `use` ends,
 * however it ends: a request holds what it read until then.
 */
export const withMeteredBody = <E, F, A, E2, R>(
  budget: ByteBudget,
  owner: string,
  body: Stream.Stream<Uint8Array, E>,
  refused: () => F,
  use: (body: Stream.Stream<Uint8Array, E | F>) => Effect.Effect<A, E2, R>
): Effect.Effect<A, E2, R> =>
  Effect.suspend(() => {
    let taken = 0
    const metered = body.pipe(Stream.mapEffect((chunk) => {
      if (!budget.take(owner, chunk.length)) return Effect.fail(refused())
      taken += chunk.length
      return Effect.succeed(chunk)
    }))
    return use(metered).pipe(Effect.ensuring(Effect.sync(() => budget.give(owner, taken))))
  })
