/**
 * A job per key (a partner, an app, a destination), each run by one process at a time under its lease,
 * keys spread over the live processes by rendezvous hashing (like shards). Every `tick` the known keys
 * are looked at: this process takes the free leases of the keys it should run and hands back those it
 * should not any more. A SIGKILLed holder's leases expire and the survivors take its keys. A key's job
 * that fails starts again after a backoff, holding its lease: other keys never notice.
 */
import { Effect, Fiber, Metric, Option, Schedule } from "effect"
import type { Duration } from "effect"
import { Cluster, holdWhile } from "../../domain/Cluster.ts"
import { shardOf } from "../../domain/shards.ts"
import { ownerOf } from "./ShardAssignment.ts"

export interface KeyedJobs<E, R, E2, R2> {
  /** names the job in logs ("translator", "device pipeline") */
  readonly name: string
  /** the lease of a key's job, e.g. `job.events.<app>` */
  readonly leaseKey: (key: string) => string
  /** every key that may need a job now (looked at every tick) */
  readonly keys: Effect.Effect<ReadonlySet<string>, E2, R2>
  /** a key's job: runs while the lease is held; restarted with backoff when it fails */
  readonly run: (key: string) => Effect.Effect<unknown, E, R>
  /** how often keys and ownership are looked at; default 1 second */
  readonly tick?: Duration.Input
  /** the number of keys whose job runs in this process */
  readonly running?: Metric.Gauge<number>
  /**
   * Whether a key no longer listed ends its job (its lease handed back): for keys that end for good (a
   * deleted destination's lanes). Not for keys listed while they have work (an app with batches waiting),
   * whose job would end and start again with every lull. Default false: a job ends only when another
   * process should run it. (Before stop 28 a deleted destination's lanes kept their jobs, leases and
   * metrics for the life of the process: 914 deliverers counted for 34 lanes.)
   */
  readonly endWhenUnlisted?: boolean
}

/** Runs this process's share of the keys' jobs for the life of the Scope. */
export const runKeyedJobs = <E, R, E2, R2>(jobs: KeyedJobs<E, R, E2, R2>) =>
  Effect.gen(function*() {
    const cluster = yield* Cluster
    const context = yield* Effect.context<R | R2>()
    const held = new Map<string, Fiber.Fiber<void>>()
    let members: ReadonlyArray<string> = [cluster.self]

    yield* Effect.addFinalizer(() => Fiber.interruptAll([...held.values()]))

    const run = (key: string) =>
      jobs.run(key).pipe(
        Effect.tapError((error) => Effect.logWarning(`${jobs.name} failed; starting it again`, { key, error })),
        Effect.catchDefect((defect) => Effect.fail(defect)),
        Effect.retry(Schedule.min([Schedule.exponential("200 millis"), Schedule.spaced("10 seconds")])),
        Effect.andThen(Effect.never)
      )

    const start = (key: string) =>
      Effect.gen(function*() {
        const lease = yield* cluster.tryLease(jobs.leaseKey(key))
        if (Option.isNone(lease)) return
        yield* Effect.logInfo(`${jobs.name} started`, { key })
        const fiber = yield* holdWhile(lease.value, run(key), cluster.renewEveryMillis).pipe(
          Effect.catchCause((cause) => Effect.logWarning(`${jobs.name} stopped`, { key, cause })),
          Effect.ensuring(Effect.sync(() => held.delete(key))),
          Effect.provideContext(context),
          Effect.forkDetach
        )
        held.set(key, fiber)
      })

    const tick = Effect.gen(function*() {
      members = yield* cluster.members.pipe(Effect.orElseSucceed(() => members))
      const keys = yield* jobs.keys.pipe(
        Effect.tapError((error) => Effect.logWarning(`${jobs.name}: cannot list keys`, error)),
        Effect.orElseSucceed((): ReadonlySet<string> => new Set(held.keys())),
        Effect.provideContext(context)
      )
      const all = members.includes(cluster.self) ? members : [...members, cluster.self]
      const mine = (key: string) => ownerOf(shardOf(key, 0x7fffffff), all) === cluster.self
      for (const [key, fiber] of held) {
        const unlisted = jobs.endWhenUnlisted === true && !keys.has(key)
        if (!mine(key) || unlisted) {
          held.delete(key)
          yield* Effect.forkDetach(Fiber.interrupt(fiber))
          yield* Effect.logInfo(unlisted ? `${jobs.name} ended: its key is gone` : `${jobs.name} handed back`, { key })
        }
      }
      for (const key of keys) {
        if (mine(key) && !held.has(key)) {
          yield* start(key).pipe(Effect.catch((error) => Effect.logWarning(`${jobs.name}: cannot take a lease`, { key, error })))
        }
      }
      if (jobs.running !== undefined) yield* Metric.update(jobs.running, held.size)
    })

    yield* tick
    yield* tick.pipe(Effect.delay(jobs.tick ?? "1 second"), Effect.forever, Effect.forkScoped)
  })
