/**
 * Groups a stream by what has arrived: each group is every element waiting, up to `max`, and only the
 * first is waited for. A consumer that commits a group per transaction then does fewer, larger commits
 * exactly when it is behind. (`Stream.groupedWithin(max, "5 millis")` did not: its window starts at a
 * group's first element and a busy event loop fires it late, after one more pull, so a pipeline behind
 * by hundreds of messages still committed them one at a time.)
 */
import { Effect, Stream } from "effect"
import type { Scope } from "effect"

/** `stream` pulled ahead into a buffer of `max` elements (for the life of the Scope), taken in groups of all that is waiting. */
export const arrivedGroups = <A, E, R>(stream: Stream.Stream<A, E, R>, max: number): Effect.Effect<Stream.Stream<ReadonlyArray<A>, E>, never, R | Scope.Scope> =>
  Effect.map(Stream.toQueue(stream, { capacity: max }), (queue) => Stream.chunks(Stream.fromQueue(queue)))
