/**
 * Wakes a destination's lanes as soon as its entity changes, ahead of their periodic re-read
 * (`laneRereadMs`, 5 s): one ordered consumer per process on `snapshot.destination.*` (SNAPSHOTS, from
 * now on), which the relay publishes once a change is committed. A lowered `ratePerSecond` then applies
 * within about the relay's lag, not up to 5 s later (stop 28's outside attack: 40/s lowered to 2/s, 160
 * requests at the old rate meanwhile). Should the follower stop (the bus away), it starts again, and the
 * periodic re-read still bounds how late a change is seen.
 */
import { DeliverPolicy } from "@nats-io/jetstream"
import { Effect, Stream } from "effect"
import { destination } from "../../domain/entities/destination.ts"
import { snapshotSubject, StreamNames } from "../../domain/subjects.ts"
import { consumeScoped } from "../../infra/nats/consumeScoped.ts"
import { Nats, NatsError, tryNats } from "../../infra/nats/Nats.ts"

/** Waits for the next change of a destination (or forever, while none comes). */
export type DestinationChanged = (id: string) => Effect.Effect<void>

const prefix = snapshotSubject(destination.type, "")

/** Follows SNAPSHOTS for destination changes for the life of the Scope; answers how to wait for one. */
export const followDestinationChanges = Effect.gen(function*() {
  const { jetstream } = yield* Nats
  const waiting = new Map<string, Set<() => void>>()
  const wake = (id: string) => {
    const waiters = waiting.get(id)
    waiting.delete(id)
    for (const resume of waiters ?? []) resume()
  }
  const follow = Effect.gen(function*() {
    const consumer = yield* tryNats("follow destination snapshots", () =>
      jetstream.consumers.get(StreamNames.snapshots, { filter_subjects: snapshotSubject(destination.type, "*"), deliver_policy: DeliverPolicy.New }))
    const messages = yield* consumeScoped("follow destination snapshots", () => consumer.consume())
    // changes missed while no follower ran: every lane reads its destination again
    for (const id of [...waiting.keys()]) wake(id)
    yield* Stream.fromAsyncIterable(messages, (cause) => new NatsError({ operation: "follow destination snapshots", cause })).pipe(
      Stream.runForEach((message) => Effect.sync(() => wake(message.subject.slice(prefix.length))))
    )
  }).pipe(
    Effect.scoped,
    Effect.tapCause((cause) => Effect.logWarning("delivery: following destination changes stopped; starting again", cause)),
    Effect.ignore,
    Effect.andThen(Effect.sleep("1 second"))
  )
  yield* Effect.forkScoped(Effect.forever(follow))
  const changed: DestinationChanged = (id) =>
    Effect.callback<void>((resume) => {
      const waiter = () => resume(Effect.void)
      const waiters = waiting.get(id) ?? new Set()
      waiters.add(waiter)
      waiting.set(id, waiters)
      return Effect.sync(() => {
        waiters.delete(waiter)
        if (waiters.size === 0 && waiting.get(id) === waiters) waiting.delete(id)
      })
    })
  return changed
})
