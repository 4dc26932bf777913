/**
 * Fires the due reminders of the shards this process owns.
 *
 * The scheduler sleeps until the earliest next attempt among its shards (through `Clock`), and wakes
 * earlier when a nearer reminder of one of its shards is set through this process's store, when its
 * owned shards change, and at least every `pollInterval` (reminders set by other processes on the
 * same file). Awake, it fires what is due, earliest first, in batches of at most `batchSize`.
 *
 * At least once: a reminder is marked `fired` only after `fire` succeeded, so a crash or a shard
 * takeover between the two fires it again; the receiver deduplicates by a command id derived from the
 * entity, `dueAt` and the setting's token. While a shard moves, its old and new owner may both fire the
 * same reminder, for the same reason. A failing (or timed-out) `fire` is logged and its reminder postponed in the store,
 * with a delay that doubles with its lateness (1 s, 1 s, 2 s, 4 s, … up to `maxRetryDelay`), so it
 * holds up no other reminder, survives a restart, and is never dropped.
 *
 * Owned shards arrive as a stream of sets, each replacing the previous one (none are owned until the
 * first): `SubscriptionRef.changes(ref)` of the shard-ownership service, or `Stream.make(shards)` for
 * a fixed set. A shard dropped from the set is not fired from any more.
 */
import { Clock, Duration, Effect, Metric, Option, Queue, Ref, Stream } from "effect"
import { Reminders } from "../../domain/Reminders.ts"
import type { Reminder } from "../../domain/Reminders.ts"

export interface ReminderSchedulerOptions<E, R> {
  /** The shards this process owns right now; each element replaces the previous one. */
  readonly shards: Stream.Stream<Iterable<number>, never, R>
  /** Hands a due reminder to its entity (a command on the bus); retried later when it fails. */
  readonly fire: (reminder: Reminder) => Effect.Effect<void, E, R>
  /** Longest sleep, so that reminders set by other processes are seen (default 1 second). */
  readonly pollInterval?: Duration.Input | undefined
  /** Most reminders read and fired per round (default 256). */
  readonly batchSize?: number | undefined
  /** Fires in flight at once; they start in due order (default 16). */
  readonly concurrency?: number | undefined
  /** A fire that has not answered by then counts as failed (default 10 seconds). */
  readonly fireTimeout?: Duration.Input | undefined
  /** Longest delay between two attempts of a failing reminder (default 1 minute). */
  readonly maxRetryDelay?: Duration.Input | undefined
}

/** The scheduler's metrics (Effect's registry is global: one series per process). */
export const reminderMetrics = {
  fired: Metric.counter("tributary_reminders_fired_total", {
    description: "Reminders handed to their entity and marked fired",
    incremental: true
  }),
  fireFailures: Metric.counter("tributary_reminders_fire_failures_total", {
    description: "Attempts to fire a reminder that failed or timed out (each is retried later)",
    incremental: true
  }),
  lagSeconds: Metric.gauge("tributary_reminders_lag_seconds", {
    description: "How late the oldest reminder found due at the scheduler's last round was (0: none due)"
  })
}

const minRetryMillis = 1_000

interface Owned {
  readonly list: ReadonlyArray<number>
  readonly set: ReadonlySet<number>
}

/** Runs the scheduler until interrupted; it never fails (store errors are logged and retried). */
export const runReminders = <E, R>(options: ReminderSchedulerOptions<E, R>): Effect.Effect<never, never, Reminders | R> =>
  Effect.gen(function*() {
    const store = yield* Reminders
    const pollMillis = Duration.toMillis(options.pollInterval ?? "1 second")
    const batchSize = options.batchSize ?? 256
    const fireTimeout = options.fireTimeout ?? "10 seconds"
    const maxRetryMillis = Duration.toMillis(options.maxRetryDelay ?? "1 minute")

    const owned = yield* Ref.make<Owned>({ list: [], set: new Set() })
    // The instant the scheduler sleeps until: a reminder set before it must wake it. Infinity while
    // awake, since a set made during a round may be missing from what the round read.
    const wakeBefore = yield* Ref.make(Infinity)
    // Rung to wake the scheduler early; one pending ring is enough.
    const bell = yield* Queue.sliding<void>(1)
    const ring = Queue.offer(bell, undefined)

    yield* options.shards.pipe(
      Stream.runForEach((shards) =>
        Ref.set(owned, toOwned(shards)).pipe(Effect.andThen(ring))),
      Effect.forkChild
    )
    yield* store.changes.pipe(
      Stream.runForEach((reminder) =>
        Effect.gen(function*() {
          if (reminder.dueAt < (yield* Ref.get(wakeBefore)) && (yield* Ref.get(owned)).set.has(reminder.shard)) yield* ring
        })),
      Effect.forkChild({ startImmediately: true })
    )

    const retryAt = (reminder: Reminder, now: number) =>
      now + Math.min(maxRetryMillis, Math.max(minRetryMillis, now - reminder.dueAt))

    const attempt = (reminder: Reminder) =>
      options.fire(reminder).pipe(
        Effect.timeout(fireTimeout),
        Effect.matchCauseEffect({
          onSuccess: () => store.fired(reminder).pipe(Effect.andThen(Metric.update(reminderMetrics.fired, 1))),
          onFailure: (cause) =>
            Effect.gen(function*() {
              const until = retryAt(reminder, yield* Clock.currentTimeMillis)
              yield* Metric.update(reminderMetrics.fireFailures, 1)
              yield* Effect.logWarning("firing a reminder failed; it is retried later", {
                ...reminder,
                retryAt: new Date(until).toISOString()
              }, cause)
              yield* store.postpone(reminder, until)
            })
        })
      )

    // Fires what is due now; answers when to wake next (none: nothing set in our shards).
    const round = Effect.gen(function*() {
      yield* Ref.set(wakeBefore, Infinity)
      yield* Queue.clear(bell) // what a ring announced is committed, so the reads below see it
      const shards = (yield* Ref.get(owned)).list
      if (shards.length === 0) return Option.none<number>()
      const now = yield* Clock.currentTimeMillis
      const due = yield* store.due(shards, now, batchSize)
      const oldest = due.reduce((min, r) => Math.min(min, r.dueAt), now)
      yield* Metric.update(reminderMetrics.lagSeconds, (now - oldest) / 1000)
      yield* Effect.forEach(due, attempt, { concurrency: options.concurrency ?? 16, discard: true })
      if (due.length === batchSize) return Option.some(now) // more are due: go on at once
      return yield* store.next(shards)
    }).pipe(
      Effect.catch((error) =>
        Effect.logWarning("the reminder scheduler's round failed; it tries again at its next poll", error).pipe(
          Effect.as(Option.none<number>())
        ))
    )

    const sleepUntil = (next: Option.Option<number>) =>
      Effect.gen(function*() {
        const target = Option.getOrElse(next, () => Infinity)
        yield* Ref.set(wakeBefore, target)
        const now = yield* Clock.currentTimeMillis
        const until = Math.min(target, now + pollMillis)
        if (until <= now) return yield* Effect.yieldNow
        yield* Effect.raceFirst(Effect.sleep(Duration.millis(until - now)), Queue.take(bell))
      })

    return yield* Effect.forever(Effect.flatMap(round, sleepUntil))
  }).pipe(Effect.annotateLogs({ component: "reminders" }))

const toOwned = (shards: Iterable<number>): Owned => {
  const set = new Set(shards)
  return { list: [...set].sort((a, b) => a - b), set }
}
