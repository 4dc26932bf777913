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

export const make = (policy: RateLimitPolicy, options: { readonly sweepEveryMillis?: number } = {}): RateLimiter => {
  const buckets = new Map<string, Bucket & { readonly limit: RateLimit }>()
  const sweepEvery = options.sweepEveryMillis ?? 10_000
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

  return {
    size: () => buckets.size,
    take: (key, cost) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        if (now - swept.at >= sweepEvery) sweep(now)
        const limit = limitFor(policy, key.role)
        if (limit === undefined) return Effect.void
        // A route heavier than a whole burst could never pass: it costs the whole bucket instead.
        const need = Math.min(cost, limit.burst)
        let bucket = buckets.get(key.id)
        if (bucket === undefined || bucket.limit !== limit) {
          bucket = { tokens: limit.burst, updatedAt: now, limit }
          buckets.set(key.id, bucket)
        }
        refill(bucket, limit, now)
        if (bucket.tokens >= need) {
          bucket.tokens -= need
          return Effect.void
        }
        const retryAfterSeconds = Math.max(1, Math.ceil((need - bucket.tokens) / limit.perSecond))
        return Effect.fail(new RateLimited({
          detail: `this key may send ${limit.perSecond} requests a second (bursts of ${limit.burst}); retry in ${retryAfterSeconds} s`,
          retryAfterSeconds
        }))
      })
  }
}
