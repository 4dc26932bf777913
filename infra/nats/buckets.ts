/**
 * The KV buckets that coordinate platform processes (domain/subjects.ts BucketNames), created on
 * first use by whichever process comes first. nats-server 2.9 has no per-entry TTL: the bucket's
 * `ttl` (its stream's max_age) is every entry's, so an entry lives `coordinationTtl` after its last write.
 */
import { Kvm } from "@nats-io/kv"
import type { KV } from "@nats-io/kv"
import { JetStreamApiError } from "@nats-io/jetstream"
import { Duration, Effect, Schedule } from "effect"
import { Nats, tryNats } from "./Nats.ts"

/** How long a lease or a membership outlives its holder's last write: a SIGKILLed process's shards move after at most this. */
export const coordinationTtl: Duration.Input = "10 seconds"

/** JetStream's "stream name already in use": another process created the bucket at the same time. */
const streamNameInUse = 10058

/** Opens the bucket, creating it if it does not exist yet; `ttl: "forever"` for entries kept until deleted. */
export const openBucket = (name: string, { ttl = coordinationTtl }: { readonly ttl?: Duration.Input | "forever" } = {}) =>
  Effect.gen(function*() {
    const { connection } = yield* Nats
    return yield* tryNats(`open bucket ${name}`, (): Promise<KV> =>
      new Kvm(connection).create(name, { ttl: ttl === "forever" ? 0 : Duration.toMillis(ttl), history: 1 })).pipe(
        // two processes creating it at once: the loser opens the winner's
        Effect.retry({
          while: (error) => error.cause instanceof JetStreamApiError && error.cause.code === streamNameInUse,
          schedule: Schedule.recurs(3)
        })
      )
  })
