/**
 * Keyed jobs spread over the live processes (a partner's translator, a destination lane's deliverer):
 * each key runs in one process at a time under its lease, keys spread by rendezvous hashing (like
 * shards). Every `tick` the known keys are looked at — so a new key needs no restart —: this process
 * takes the free leases of the keys it should run and hands back those it should not any more (a
 * process joined). A SIGKILLed holder's leases expire and the survivors take its keys. A job that
 * fails starts again after a backoff, holding its lease: other keys never notice.
 */
import { Effect, Fiber, Metric, Option, Schedule } from "effect"
import type { Duration } from "effect"
import { Cluster, holdWhile } from "../../domain/Cluster.ts"
import { shardOf } from "../../domain/shards.ts"
import { ownerOf } from "./ShardAssignment.ts"

export interface LeasedJobs<E, R, EK, RK> {
  /** what the jobs are, in log lines ("translator", "deliverer") */
  readonly kind: string
  /** the lease of a key's job */
  readonly leaseKey: (key: string) => string
  /** every key that should have a job now; on failure the held keys are kept */
  readonly keys: Effect.Effect<ReadonlySet<string>, EK, RK>
  /** a key's job, run while its lease is held; it should not end (if it does, it idles holding the lease) */
  readonly run: (key: string) => Effect.Effect<unknown, E, R>
  /** how many jobs this process runs */
  readonly running: Metric.Gauge<number>
  /** how often keys and ownership are looked at; default 1 second */
  readonly tick?: Duration.Input | undefined
}

/** Runs this process's share of the keyed jobs for the life of the Scope. */
export const runLeasedJobs = <E, R, EK, RK>(jobs: LeasedJobs<E, R, EK, RK>) =>
  Effect.gen(function*() {
    const cluster = yield* Cluster
    const context = yield* Effect.context<R | RK>()
    const held = new Map<string, Fiber.Fiber<void>>()
    let members: ReadonlyArray<string> = [cluster.self]

    yield* Effect.addFinalizer(() => Fiber.interruptAll([...held.values()]))

    // Holding the lease, the job runs; after a failure it starts again (backoff).
    const run = (key: string) =>
      jobs.run(key).pipe(
        Effect.tapError((error) => Effect.logWarning(`${jobs.kind} failed; starting it again`, { key, error })),
        Effect.catchDefect((defect) => Effect.fail(defect)),
        Effect.retry(Schedule.min([Schedule.exponential("200 millis"), Schedule.spaced("10 seconds")])),
        Effect.andThen(Effect.never)
      )

    const start = (key: string) =>
      Effect.gen(function*() {
        const lease = yield* cluster.tryLease(jobs.leaseKey(key))
        if (Option.isNone(lease)) return
        yield* Effect.logInfo(`${jobs.kind} started`, { key })
        const fiber = yield* holdWhile(lease.value, run(key), cluster.renewEveryMillis).pipe(
          Effect.catchCause((cause) => Effect.logWarning(`${jobs.kind} stopped`, { key, cause })),
          Effect.ensuring(Effect.sync(() => held.delete(key))),
          Effect.provideContext(context),
          Effect.forkDetach
        )
        held.set(key, fiber)
      })

    const tick = Effect.gen(function*() {
      members = yield* cluster.members.pipe(Effect.orElseSucceed(() => members))
      const keys = yield* jobs.keys.pipe(
        Effect.tapError((error) => Effect.logWarning(`cannot list the keys of ${jobs.kind}s`, error)),
        Effect.orElseSucceed((): ReadonlySet<string> => new Set<string>(held.keys())),
        Effect.provideContext(context)
      )
      const all = members.includes(cluster.self) ? members : [...members, cluster.self]
      const mine = (key: string) => keys.has(key) && ownerOf(shardOf(key, 0x7fffffff), all) === cluster.self
      for (const [key, fiber] of held) {
        if (!mine(key)) {
          held.delete(key)
          yield* Effect.forkDetach(Fiber.interrupt(fiber))
          yield* Effect.logInfo(`${jobs.kind} handed back`, { key })
        }
      }
      for (const key of keys) {
        if (mine(key) && !held.has(key)) {
          yield* start(key).pipe(Effect.catch((error) => Effect.logWarning(`cannot take a ${jobs.kind} lease`, { key, error })))
        }
      }
      yield* Metric.update(jobs.running, held.size)
    })

    yield* tick
    yield* tick.pipe(Effect.delay(jobs.tick ?? "1 second"), Effect.forever, Effect.forkScoped)
  })
