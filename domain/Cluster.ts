/**
 * The cluster as the actor runtime sees it: which platform processes are alive, and leases that let
 * one of them at a time do something (own a shard, run the relay, listen on a fixed port). Declared
 * here; implemented on JetStream KV in infra/nats/cluster.ts.
 *
 * A lease does not fence on its own: between its expiry and a paused holder's next renewal, both may
 * act. Whatever a lease guards keeps its own last guard (the event store's expected revision, the
 * relay's expected HISTORY sequence).
 */
import { Context, Deferred, Effect, Schema } from "effect"
import type { Option } from "effect"

export class ClusterError extends Schema.TaggedError<ClusterError>()("ClusterError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {}

/** The lease is held by someone else now (it expired, or was taken): stop what it guards. */
export class LeaseLost extends Schema.TaggedError<LeaseLost>()("LeaseLost", { key: Schema.String }) {}

/** A lease this process holds. */
export interface HeldLease {
  readonly key: string
  /** Extends it by the lease's time to live; fails with LeaseLost when someone else has it. */
  readonly renew: Effect.Effect<void, LeaseLost | ClusterError>
  /** Gives it back (only if still ours), so that another process may take it at once. */
  readonly release: Effect.Effect<void>
}

/** A live process and the shards it holds. */
export const ClusterProcess = Schema.Struct({
  id: Schema.String,
  shards: Schema.Array(Schema.Int)
}).annotate({ identifier: "ClusterProcess" })
export type ClusterProcess = typeof ClusterProcess.Type

export class Cluster extends Context.Service<Cluster, {
  /** This process's member id (unique per start). */
  readonly self: string
  /** The member ids of the live processes, this one included, sorted. */
  readonly members: Effect.Effect<ReadonlyArray<string>, ClusterError>
  /** Takes the lease `key` if nobody holds it. */
  readonly tryLease: (key: string) => Effect.Effect<Option.Option<HeldLease>, ClusterError>
  /** How often a holder renews its leases: a third of their time to live. */
  readonly renewEveryMillis: number
  /** Every live process with the shards it holds (the admin view). */
  readonly processes: Effect.Effect<ReadonlyArray<ClusterProcess>, ClusterError>
  /**
   * The lowest value of the bound `name` among the live processes, this one's included (each names its
   * bounds in its heartbeat): a bound every process enforces together is checked against it, so a
   * process started with a higher one (a mistake, or a rolling change) lets nothing pass another's. This
   * process's own when the others' cannot be read (logged); unbounded when no process names it.
   */
  readonly strictest: (name: string) => Effect.Effect<number>
}>()("tributary/Cluster") {}

/**
 * Runs `job` while holding `lease`: renews it in the background, and when a renewal is refused
 * interrupts the job and fails with LeaseLost (a renewal that fails for another reason — NATS
 * briefly away — is tried again at the next period). When interrupted, the job is interrupted first
 * (its finalizers run while the lease is still renewed), then the lease is given back.
 */
export const holdWhile = <A, E, R>(lease: HeldLease, job: Effect.Effect<A, E, R>, renewEveryMillis: number) =>
  Effect.gen(function*() {
    yield* Effect.addFinalizer(() => lease.release)
    const lost = yield* Deferred.make<never, LeaseLost>()
    yield* lease.renew.pipe(
      Effect.delay(renewEveryMillis),
      Effect.forever,
      Effect.catchTag("LeaseLost", (error) => Deferred.fail(lost, error).pipe(Effect.andThen(Effect.never))),
      Effect.catchTag("ClusterError", (error) => Effect.logWarning(`lease ${lease.key}: renewal failed`, error)),
      Effect.forever,
      Effect.forkScoped
    )
    return yield* Effect.raceFirst(job, Deferred.await(lost))
  }).pipe(Effect.scoped)
