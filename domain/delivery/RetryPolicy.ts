/**
 * What to do with a request's outcome (issue 9): 2xx → delivered; 429 → throttled (the governor
 * honours `Retry-After` and lowers its rate; it costs no attempt: the backlog waits on disk, it is
 * never dead-lettered for the partner's pace); 408, 5xx, a timeout or a connection error → retried
 * after an exponential backoff with full jitter, up to `maxAttempts`, then dead-lettered; any other
 * 4xx → dead-lettered at once (sending it again would get the same answer).
 *
 * Pure: the jitter comes from an injected `random` (`Math.random` in production, a seeded one in tests).
 */
import { Schema } from "effect"

export const RetryPolicy = Schema.Struct({
  /** attempts in all, the first included */
  maxAttempts: Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)),
  baseDelayMs: Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0)),
  maxDelayMs: Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))
}).annotate({ identifier: "RetryPolicy" })
export type RetryPolicy = typeof RetryPolicy.Type

export const defaultRetryPolicy: RetryPolicy = { maxAttempts: 8, baseDelayMs: 200, maxDelayMs: 60_000 }

/** How a request ended, as the sender saw it. */
export type Outcome =
  | { readonly _tag: "Answered"; readonly status: number; readonly retryAfter?: string | undefined }
  | { readonly _tag: "TimedOut" }
  | { readonly _tag: "ConnectionFailed"; readonly message: string }

export type Verdict =
  | { readonly _tag: "Delivered" }
  /** retry when the governor lets it; `retryAfterMs` is the partner's `Retry-After`, if it said one */
  | { readonly _tag: "Throttled"; readonly retryAfterMs: number | undefined }
  | { readonly _tag: "Retry"; readonly delayMs: number }
  | { readonly _tag: "DeadLetter"; readonly reason: "rejected" | "attempts-exhausted" }

export type OutcomeClass = "delivered" | "throttled" | "retryable" | "rejected"

export const classify = (outcome: Outcome): OutcomeClass => {
  if (outcome._tag !== "Answered") return "retryable"
  const { status } = outcome
  if (status >= 200 && status < 300) return "delivered"
  if (status === 429) return "throttled"
  if (status === 408 || status >= 500) return "retryable"
  // 4xx, and what no partner should answer (1xx, 3xx): sending it again would get the same
  return "rejected"
}

/** The longest `Retry-After` honoured. */
export const maxRetryAfterMs = 3_600_000

/**
 * A `Retry-After` header in ms from `nowMs`: delay-seconds or an HTTP date, bounded by
 * `maxRetryAfterMs`; undefined when absent or unreadable.
 */
export const retryAfterMs = (header: string | undefined, nowMs: number): number | undefined => {
  if (header === undefined) return undefined
  const text = header.trim()
  if (/^\d+$/.test(text)) return Math.min(maxRetryAfterMs, Number(text) * 1000)
  const date = Date.parse(text)
  if (Number.isNaN(date)) return undefined
  return Math.min(maxRetryAfterMs, Math.max(0, date - nowMs))
}

/** Full jitter: uniform in [0, min(maxDelay, base × 2^(attempt-1))) after the `attempt`-th failure (from 1). */
export const backoffMs = (policy: RetryPolicy, attempt: number, random: () => number): number =>
  random() * Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, attempt - 1))

/** The verdict on the `attempt`-th attempt (from 1) of a request that ended with `outcome`. */
export const decide = (
  policy: RetryPolicy,
  outcome: Outcome,
  attempt: number,
  nowMs: number,
  random: () => number
): Verdict => {
  switch (classify(outcome)) {
    case "delivered":
      return { _tag: "Delivered" }
    case "throttled":
      return {
        _tag: "Throttled",
        retryAfterMs: outcome._tag === "Answered" ? retryAfterMs(outcome.retryAfter, nowMs) : undefined
      }
    case "rejected":
      return { _tag: "DeadLetter", reason: "rejected" }
    case "retryable":
      return attempt >= policy.maxAttempts
        ? { _tag: "DeadLetter", reason: "attempts-exhausted" }
        : { _tag: "Retry", delayMs: backoffMs(policy, attempt, random) }
  }
}
