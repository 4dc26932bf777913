/**
 * Shards spread over the live processes: each process runs a job for every shard it owns, and owns
 * a shard only while it holds that shard's lease (Cluster). Every `tick` it computes the shards it
 * should own among the live members (ShardAssignment: rendezvous hashing), takes those that are
 * free, and hands back those it should not own any more — its job stops (an entity shard stops
 * pulling and lets its actors finish what they hold), then the lease is given back — so a joining
 * process gets its share. A SIGKILLed process's leases expire with the bucket's TTL and the
 * survivors take them at their next tick.
 */
import { Context, Deferred, Effect, Fiber, Metric, Option, SubscriptionRef } from "effect"
import type { Duration, Scope, Stream } from "effect"
import { Cluster, holdWhile } from "../../domain/Cluster.ts"
import { shardLeaseKey } from "../../domain/subjects.ts"
import { shardsOf } from "./ShardAssignment.ts"

const shardsOwned = Metric.gauge("tributary_shards_owned", { description: "Shards whose lease this process holds" })
const clusterMembers = Metric.gauge("tributary_cluster_members", { description: "Live platform processes, as this one sees them" })

/** The shards this process owns, as they change: each element replaces the previous one (the current set first). */
export class OwnedShards extends Context.Service<OwnedShards, {
  readonly changes: Stream.Stream<ReadonlySet<number>>
}>()("tributary/OwnedShards") {}

export interface ShardsOptions<E, R> {
  /** shards numbered 0 … shards-1 */
  readonly shards: number
  /**
   * the job of one owned shard, run while its lease is held; interrupted when the shard is handed
   * back. It runs `started` once it is at work: the shards taken at start wait for that.
   */
  readonly run: (shard: number, started: Effect.Effect<void>) => Effect.Effect<never, E, R>
  /** how often ownership is reconsidered; default 1 second */
  readonly tick?: Duration.Input
}

/**
 * Takes the free shards this process should own now, then keeps reconsidering in the background
 * for the life of the Scope; when the Scope closes, every shard is handed back (draining in parallel).
 * Returns the owned shards as they change (e.g. for the reminders of the owned shards).
 */
export const runShards = <E, R>(options: ShardsOptions<E, R>): Effect.Effect<OwnedShards["Service"], never, Cluster | R | Scope.Scope> =>
  Effect.gen(function*() {
    const cluster = yield* Cluster
    const context = yield* Effect.context<R>()
    const held = new Map<number, Fiber.Fiber<void>>()
    // Shards being handed back (draining), with the fiber that waits for it.
    const leaving = new Map<number, Fiber.Fiber<void>>()
    let members: ReadonlyArray<string> = [cluster.self]
    const owned = yield* SubscriptionRef.make<ReadonlySet<number>>(new Set())
    const publish = Effect.suspend(() => {
      const now = new Set(held.keys())
      return Effect.flatMap(SubscriptionRef.get(owned), (before) =>
        before.size === now.size && [...now].every((shard) => before.has(shard)) ? Effect.void : SubscriptionRef.set(owned, now))
    })

    // Stopping: every shard drains at once, each then gives its lease back; so do those being handed back.
    yield* Effect.addFinalizer(() => Fiber.interruptAll([...held.values()]).pipe(Effect.andThen(Fiber.awaitAll([...leaving.values()]))))

    const start = (shard: number) =>
      Effect.gen(function*() {
        const lease = yield* cluster.tryLease(shardLeaseKey(shard))
        if (Option.isNone(lease)) return Option.none()
        const started = yield* Deferred.make<void>()
        const job = holdWhile(lease.value, options.run(shard, Deferred.succeed(started, undefined).pipe(Effect.asVoid)), cluster.renewEveryMillis).pipe(
          Effect.catchCause((cause) => Effect.logWarning("shard stopped", { shard, cause })),
          Effect.ensuring(Effect.sync(() => held.delete(shard)).pipe(Effect.andThen(publish))),
          Effect.provideContext(context)
        )
        held.set(shard, yield* Effect.forkDetach(job))
        return Option.some(started)
      })

    const handBack = (shard: number, fiber: Fiber.Fiber<void>) =>
      Effect.gen(function*() {
        leaving.set(shard, yield* Effect.forkDetach(Fiber.interrupt(fiber).pipe(Effect.ensuring(Effect.sync(() => leaving.delete(shard))))))
      })

    const tick = Effect.gen(function*() {
      // If the member list cannot be read, keep the last one: never drop shards over a NATS blip.
      members = yield* cluster.members.pipe(
        Effect.tapError((error) => Effect.logWarning("cannot list the cluster's members", error)),
        Effect.orElseSucceed(() => members)
      )
      const mine = shardsOf(cluster.self, members, options.shards)
      const handedBack = [...held].filter(([shard]) => !mine.has(shard) && !leaving.has(shard))
      for (const [shard, fiber] of handedBack) yield* handBack(shard, fiber)
      const wanted = [...mine].filter((shard) => !held.has(shard) && !leaving.has(shard))
      const taken = (yield* Effect.forEach(wanted, (shard) =>
        start(shard).pipe(
          Effect.map(Option.match({ onNone: () => [], onSome: (started) => [{ shard, started }] })),
          Effect.catch((error) => Effect.as(Effect.logWarning("cannot take a shard", { shard, error }), []))
        ), { concurrency: 16 })).flat()
      if (handedBack.length > 0) yield* Effect.logInfo("shards handed back", { shards: handedBack.map(([shard]) => shard), members: members.length })
      if (taken.length > 0) yield* Effect.logInfo("shards taken", { shards: taken.map((t) => t.shard), members: members.length })
      yield* publish
      yield* Metric.update(shardsOwned, held.size)
      yield* Metric.update(clusterMembers, members.length)
      return taken
    })

    // At start, wait until the shards taken are at work (bounded: a shard that cannot start yet keeps trying on its own).
    const first = yield* tick
    yield* Effect.forEach(first, ({ started }) => Deferred.await(started), { discard: true, concurrency: "unbounded" }).pipe(
      Effect.timeoutOption("15 seconds")
    )
    yield* tick.pipe(Effect.delay(options.tick ?? "1 second"), Effect.forever, Effect.forkScoped)
    return { changes: SubscriptionRef.changes(owned) }
  })
