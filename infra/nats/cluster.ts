/**
 * The Cluster port on JetStream KV: membership and leases shared by every platform process on the
 * same NATS. A process is a member while its entry in `tributary-members` lives: written at start,
 * re-written every third of the TTL (its heartbeat), deleted when it stops. A SIGKILLed process's
 * entry expires with the bucket's TTL; a process of the same machine and PID namespace drops it at once,
 * since it sees that its pid is gone (lease.ts, deadHere).
 */
import type { JetStreamManager } from "@nats-io/jetstream"
import { hostname } from "node:os"
import { Effect, Layer, Schedule } from "effect"
import { Cluster, ClusterError } from "../../domain/Cluster.ts"
import { BucketNames, shardLeasePrefix } from "../../domain/subjects.ts"
import { bucketKeys, openBucket } from "./buckets.ts"
import { Nats } from "./Nats.ts"
import { deadHere, isHolderId, newHolderId, renewEveryMillis, takeLease } from "./lease.ts"

const kvCall = <A>(operation: string, f: () => Promise<A>) =>
  Effect.tryPromise({ try: f, catch: (cause) => new ClusterError({ operation, cause }) })

/**
 * The bucket's keys, read from its stream's per-subject counts (buckets.ts `bucketKeys`: no consumer,
 * nothing to wait for). Deletes are listed too; every caller reads each entry and keeps the PUTs.
 * Before, `kv.keys()` ended only when a delivered entry said nothing was pending or its consumer idled
 * for 5 s: after a stall of this thread its ordered consumer was recreated from the stream's start,
 * and on the members bucket, written every few seconds by the heartbeats, it then never ended (the 1M-line
 * ingest benchmark stopped at 250,000 lines with every shard idle); it was bounded by a 10 s timeout.
 */
const keysOf = (manager: JetStreamManager, bucket: string) =>
  bucketKeys(manager, bucket).pipe(Effect.mapError((error) => new ClusterError({ operation: "list keys", cause: error.cause })))

/** What a process says of itself in its heartbeat (its id, host and pid make it one), read back from another's. */
interface Heartbeat {
  readonly shards?: unknown
  readonly bounds?: Readonly<Record<string, unknown>>
}

/** A count a heartbeat names, if it is one. */
const countIn = (value: unknown): number | undefined => Number.isSafeInteger(value) && (value as number) >= 0 ? value as number : undefined

const make = (options: { readonly shards?: number; readonly bounds?: Readonly<Record<string, number>> }) => Effect.gen(function*() {
  const { manager } = yield* Nats
  const members = yield* openBucket(BucketNames.members)
  const leases = yield* openBucket(BucketNames.leases)
  const self = newHolderId()
  const beat = kvCall("heartbeat", () =>
    members.put(self, JSON.stringify({ id: self, host: hostname(), pid: process.pid, shards: options.shards, bounds: options.bounds })))

  // A member is an entry whose value is a heartbeat naming that very id. A reader's JetStream API
  // request can direct the server's answer onto `$KV.tributary-members.<anything>` (its reply
  // subject), which the bucket stores too: such an entry is no member, or the shards would be spread
  // over processes that do not exist and nobody would take theirs.
  const heartbeatOf = (id: string, value: string): Heartbeat | undefined => {
    try {
      const beat = JSON.parse(value) as unknown
      return typeof beat === "object" && beat !== null && (beat as { id?: unknown }).id === id &&
          typeof (beat as { host?: unknown }).host === "string" && Number.isSafeInteger((beat as { pid?: unknown }).pid)
        ? beat as Heartbeat
        : undefined
    } catch {
      return undefined
    }
  }
  /** The live members' heartbeats, by id. */
  const heartbeats = Effect.gen(function*() {
    // Keys that cannot be member ids are not even read (junk, see above, may come by the thousand).
    const ids = (yield* keysOf(manager, BucketNames.members)).filter((id) => isHolderId(id) && !deadHere(id))
    const entries = yield* Effect.forEach(ids, (id) => kvCall(`get member ${id}`, () => members.get(id)), { concurrency: 16 })
    const beats = new Map<string, Heartbeat>()
    for (const entry of entries) {
      const beat = entry === null || entry.operation !== "PUT" ? undefined : heartbeatOf(entry.key, entry.string())
      if (beat !== undefined) beats.set(entry!.key, beat)
    }
    return beats
  })
  const live = Effect.map(heartbeats, (beats) => [...beats.keys()].sort())

  // Every process of one platform must use the same SHARDS: with another count, the same entity
  // hashes to two shards, each with its owner, and its commands lose their single writer and order.
  if (options.shards !== undefined) {
    for (const [id, beat] of yield* heartbeats) {
      const theirs = countIn(beat.shards)
      if (theirs !== undefined && theirs !== options.shards) {
        return yield* new ClusterError({
          operation: "join",
          cause: new Error(`SHARDS=${options.shards}, but the live process ${id} uses SHARDS=${theirs}: every process of one platform must use the same number`)
        })
      }
    }
  }

  // Leaving deletes the entry, so the others re-spread the shards at once rather than after the TTL.
  yield* Effect.acquireRelease(beat, () =>
    kvCall("leave", () => members.delete(self)).pipe(Effect.catch((error) => Effect.logWarning("leaving the cluster failed", error))))
  yield* beat.pipe(
    Effect.tapError((error) => Effect.logWarning("membership heartbeat failed", error)),
    Effect.ignore,
    Effect.repeat(Schedule.spaced(renewEveryMillis)),
    Effect.forkScoped
  )

  const processes = Effect.gen(function*() {
    const ids = yield* live
    const owned = new Map<string, Array<number>>(ids.map((id) => [id, []]))
    const shardKeys = (yield* keysOf(manager, BucketNames.leases)).filter((key) => key.startsWith(shardLeasePrefix))
    const entries = yield* Effect.forEach(shardKeys, (key) => kvCall(`get ${key}`, () => leases.get(key)), { concurrency: 16 })
    for (const entry of entries) {
      if (entry === null || entry.operation !== "PUT") continue
      const shard = Number(entry.key.slice(shardLeasePrefix.length))
      const holder = entry.string()
      if (!isHolderId(holder)) continue // junk a reader directed onto the lease (lease.ts, junkRevision)
      const list = owned.get(holder) ?? []
      list.push(shard)
      owned.set(holder, list)
    }
    return [...owned].map(([id, shards]) => ({ id, shards: shards.sort((a, b) => a - b) })).sort((a, b) => a.id.localeCompare(b.id))
  })

  return Cluster.of({
    self,
    members: live,
    tryLease: (key) => takeLease(leases, key, self),
    renewEveryMillis,
    processes,
    // Before (stop 30's third attack), each process checked its own: one started with another
    // DELIVERY_REFRESH_MAX_BACKLOG by mistake let 60 refreshes through.
    strictest: (name) => {
      const own = options.bounds?.[name] ?? Number.POSITIVE_INFINITY
      return heartbeats.pipe(
        Effect.map((beats) => Math.min(own, ...[...beats.values()].map((beat) => countIn(beat.bounds?.[name]) ?? Number.POSITIVE_INFINITY))),
        Effect.catch((error) => Effect.as(Effect.logWarning(`the other processes' ${name} could not be read: this process's own holds`, error), own))
      )
    }
  })
})

/** Joins the cluster (membership heartbeat) for the layer's lifetime; leaves when released. */
export const layerCluster = Layer.effect(Cluster, make({}))

/**
 * Joins as a process spreading commands over `shards` shards: refuses to join a cluster that uses another
 * number. `bounds`: what it says of the bounds every process enforces together (Cluster.strictest).
 */
export const layerClusterFor = (shards: number, bounds: Readonly<Record<string, number>> = {}) => Layer.effect(Cluster, make({ shards, bounds }))
