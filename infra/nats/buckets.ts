/**
 * The KV buckets that coordinate platform processes (domain/subjects.ts BucketNames), created on
 * first use by whichever process comes first. nats-server 2.9 has no per-entry TTL: the bucket's
 * `ttl` (its stream's max_age) is every entry's, so an entry lives `coordinationTtl` after its last write.
 */
import { Kvm } from "@nats-io/kv"
import type { KV } from "@nats-io/kv"
import { JetStreamApiError } from "@nats-io/jetstream"
import type { JetStreamManager } from "@nats-io/jetstream"
import { Duration, Effect, Schedule } from "effect"
import { Nats, tryNats } from "./Nats.ts"

/** How long a lease or a membership outlives its holder's last write: a SIGKILLed process's shards move after at most this. */
export const coordinationTtl: Duration.Input = "10 seconds"

/**
 * Another process created the bucket at the same time: JetStream answers "stream name already in use"
 * (10058) or, from nats-server 2.9 at times, "subjects overlap with an existing stream" (10065: a platform
 * process starting beside another exited on it, stop 24's CI run).
 */
const createdMeanwhile = new Set([10058, 10065])

/** Opens the bucket, creating it if it does not exist yet; `ttl: "forever"` for entries kept until deleted. */
export const openBucket = (name: string, { ttl = coordinationTtl }: { readonly ttl?: Duration.Input | "forever" } = {}) =>
  Effect.gen(function*() {
    const { connection } = yield* Nats
    return yield* tryNats(`open bucket ${name}`, (): Promise<KV> =>
      new Kvm(connection).create(name, { ttl: ttl === "forever" ? 0 : Duration.toMillis(ttl), history: 1 })).pipe(
        // two processes creating it at once: the loser opens the winner's
        Effect.retry({
          while: (error) => error.cause instanceof JetStreamApiError && createdMeanwhile.has(error.cause.code),
          schedule: Schedule.recurs(3)
        })
      )
  })

/**
 * The keys of bucket `name` matching `filter` that have an entry, deletes and purges included (their
 * markers are entries: read a key to tell), from its stream's per-subject counts: no consumer, nothing
 * to wait for. `kv.keys()` reads them through an ordered consumer that ends only when an entry says
 * nothing is pending or when it idles; entries expiring under it (a bucket with a TTL) left it waiting:
 * a destination's status route went unanswered for over 30 s after a deliverer's restart, its killed
 * predecessor's entry expiring meanwhile (attack9 takeoverDeadLetters timed out so, now and then).
 */
export const bucketKeys = (manager: JetStreamManager, name: string, filter = ">") => {
  const prefix = `$KV.${name}.`
  return tryNats(`list keys of ${name}`, () => manager.streams.info(`KV_${name}`, { subjects_filter: `${prefix}${filter}` })).pipe(
    Effect.map((info) => Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice(prefix.length)))
  )
}
