/**
 * Per-API-key rate limits: a token bucket per key, refilled continuously at `perSecond` up to
 * `burst`. A request takes its route's cost (1 unless the route weighs more); a key whose bucket holds
 * less answers 429 with `Retry-After`, the whole seconds until it holds enough.
 *
 * Why not effect/persistence's RateLimiter: its in-memory store keeps every key's bucket for ever,
 * and a bounded store means writing its four store operations (two of them adaptive, unused here);
 * this is the one operation we need. Time comes from `Clock`, so TestClock drives it.
 *
 * Memory stays bounded: a bucket that has refilled to `burst` is the same as no bucket, so buckets
 * full by now are dropped (swept at most once per `sweepEvery` of activity). What is kept is the
 * keys active within their last refill time. The state is per process: N processes behind a load
 * balancer let a key through at up to N times its rate.
 */
import { Clock, Effect } from "effect"
import { parseRole, type Role } from "../domain/ApiKeys.ts"
import { RateLimited } from "./problems.ts"

export interface RateLimit {
  /** tokens added per second */
  readonly perSecond: number
  /** the bucket's size: how many requests may come at once after a quiet time */
  readonly burst: number
}

export interface RateLimitPolicy {
  /** every key's limit, unless its role has its own (admin keys: none, unless `byRole` names admin) */
  readonly default: RateLimit
  /** by exact role (`partner:acme`) or by kind (`partner`, `service`); the exact role wins */
  readonly byRole: Readonly<Record<string, RateLimit>>
}

interface Bucket {
  tokens: number
  updatedAt: number
}

export interface RateLimiter {
  /** Takes `cost` tokens from the key's bucket, or fails with RateLimited (nothing taken). */
  readonly take: (key: { readonly id: string; readonly role: Role }, cost: number) => Effect.Effect<void, RateLimited>
  /** buckets held now (for tests and metrics) */
  readonly size: () => number
}

/** No limit (an app built without a policy). */
export const unlimited: RateLimiter = { take: () => Effect.void, size: () => 0 }

/**
 * A role's limit: its own, its kind's, else the default. Admin keys have none unless named: the
 * operator's key must still work while others are being throttled (and the benchmarks drive it).
 */
const limitFor = (policy: RateLimitPolicy, role: Role): RateLimit | undefined => {
  const kind = parseRole(role).kind
  return policy.byRole[role] ?? policy.byRole[kind] ?? (kind === "admin" ? undefined : policy.default)
}

/**
 * Token buckets by id, each with the limit it was made with. Memory stays bounded: a bucket that has
 * refilled to its burst is the same as no bucket, so full ones are dropped (swept at most once per
 * `sweepEvery` of activity).
 */
const makeBuckets = (sweepEvery: number) => {
  const buckets = new Map<string, Bucket & { readonly limit: RateLimit }>()
  const swept = { at: 0 }

  const refill = (bucket: Bucket, limit: RateLimit, now: number) => {
    bucket.tokens = Math.min(limit.burst, bucket.tokens + ((now - bucket.updatedAt) / 1000) * limit.perSecond)
    bucket.updatedAt = now
  }

  const sweep = (now: number) => {
    swept.at = now
    for (const [id, bucket] of buckets) {
      refill(bucket, bucket.limit, now)
      if (bucket.tokens >= bucket.limit.burst) buckets.delete(id)
    }
  }

  /** The bucket of `id`, refilled to `now` (created full, and not kept, when absent). */
  const current = (id: string, limit: RateLimit, now: number) => {
    if (now - swept.at >= sweepEvery) sweep(now)
    let bucket = buckets.get(id)
    if (bucket === undefined || bucket.limit !== limit) bucket = { tokens: limit.burst, updatedAt: now, limit }
    refill(bucket, limit, now)
    return bucket
  }

  /** The whole seconds until the bucket of `id` holds `need` tokens; 0 when it does now. */
  const waitFor = (bucket: Bucket, limit: RateLimit, need: number) =>
    bucket.tokens >= need ? 0 : Math.max(1, Math.ceil((need - bucket.tokens) / limit.perSecond))

  return {
    size: () => buckets.size,
    /** Takes `need` tokens, or answers how many seconds until it could (nothing taken). */
    take: (id: string, limit: RateLimit, need: number, now: number): number => {
      const bucket = current(id, limit, now)
      const wait = waitFor(bucket, limit, need)
      if (wait === 0) {
        bucket.tokens -= need
        buckets.set(id, bucket)
      }
      return wait
    },
    /** Takes one token whatever the bucket holds (down to 0): counts a failure. */
    spend: (id: string, limit: RateLimit, now: number) => {
      const bucket = current(id, limit, now)
      bucket.tokens = Math.max(0, bucket.tokens - 1)
      buckets.set(id, bucket)
    },
    /** Seconds until `id` may go on (its bucket holds a token): 0 when it may now. */
    waitFor: (id: string, limit: RateLimit, now: number) => waitFor(current(id, limit, now), limit, 1)
  }
}

export const make = (policy: RateLimitPolicy, options: { readonly sweepEveryMillis?: number } = {}): RateLimiter => {
  const buckets = makeBuckets(options.sweepEveryMillis ?? 10_000)
  return {
    size: buckets.size,
    take: (key, cost) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const limit = limitFor(policy, key.role)
        if (limit === undefined) return Effect.void
        // A route heavier than a whole burst could never pass: it costs the whole bucket instead.
        const retryAfterSeconds = buckets.take(key.id, limit, Math.min(cost, limit.burst), now)
        if (retryAfterSeconds === 0) return Effect.void
        return Effect.fail(new RateLimited({
          detail: `this key may send ${limit.perSecond} requests a second (bursts of ${limit.burst}); retry in ${retryAfterSeconds} s`,
          retryAfterSeconds
        }))
      })
  }
}

/**
 * Failed authentications, counted per remote address: a client guessing keys gets 429 once its
 * bucket is empty, and its next guesses are not even looked at (so guessing gets no faster than the
 * limit). Clients sharing the address (behind one NAT) share its bucket; valid keys never spend it.
 */
export interface AuthFailures {
  /** Fails with RateLimited while `address` has used up its failures. */
  readonly check: (address: string) => Effect.Effect<void, RateLimited>
  /** Counts one failed authentication from `address`. */
  readonly record: (address: string) => Effect.Effect<void>
}

/** No limit on failed authentications (an app built without a policy). */
export const unlimitedFailures: AuthFailures = { check: () => Effect.void, record: () => Effect.void }

export const makeAuthFailures = (limit: RateLimit, options: { readonly sweepEveryMillis?: number } = {}): AuthFailures => {
  const buckets = makeBuckets(options.sweepEveryMillis ?? 10_000)
  return {
    check: (address) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const retryAfterSeconds = buckets.waitFor(address, limit, now)
        if (retryAfterSeconds === 0) return Effect.void
        return Effect.fail(new RateLimited({
          detail: `too many requests without a valid API key from this address (${limit.perSecond} a second, bursts of ${limit.burst}); retry in ${retryAfterSeconds} s`,
          retryAfterSeconds
        }))
      }),
    record: (address) => Effect.map(Clock.currentTimeMillis, (now) => buckets.spend(address, limit, now))
  }
}
