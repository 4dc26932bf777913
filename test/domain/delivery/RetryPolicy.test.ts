import { assert, describe, it } from "@effect/vitest"
import { backoffMs, classify, decide, defaultRetryPolicy, retryAfterMs } from "../../../domain/delivery/RetryPolicy.ts"
import type { Outcome } from "../../../domain/delivery/RetryPolicy.ts"

const answered = (status: number, retryAfter?: string): Outcome => ({ _tag: "Answered", status, retryAfter })
const policy = { maxAttempts: 4, baseDelayMs: 100, maxDelayMs: 500 }

describe("the retry policy", () => {
  it("classifies: 2xx delivered, 429 throttled, 408/5xx/timeouts/connection errors retried, other 4xx rejected", () => {
    assert.deepStrictEqual([200, 202, 204].map((s) => classify(answered(s))), ["delivered", "delivered", "delivered"])
    assert.strictEqual(classify(answered(429)), "throttled")
    assert.deepStrictEqual([408, 500, 502, 503].map((s) => classify(answered(s))), Array(4).fill("retryable"))
    assert.strictEqual(classify({ _tag: "TimedOut" }), "retryable")
    assert.strictEqual(classify({ _tag: "ConnectionFailed", message: "ECONNRESET" }), "retryable")
    assert.deepStrictEqual([400, 401, 403, 404, 422, 301].map((s) => classify(answered(s))), Array(6).fill("rejected"))
  })

  it("retries up to maxAttempts, then dead-letters; a rejection is dead-lettered at once; a 429 costs no attempt", () => {
    const random = () => 0.5
    assert.deepStrictEqual(decide(policy, answered(503), 1, 0, random), { _tag: "Retry", delayMs: 50 })
    assert.deepStrictEqual(decide(policy, answered(503), 3, 0, random), { _tag: "Retry", delayMs: 200 })
    assert.deepStrictEqual(decide(policy, answered(503), 4, 0, random), { _tag: "DeadLetter", reason: "attempts-exhausted" })
    assert.deepStrictEqual(decide(policy, answered(400), 1, 0, random), { _tag: "DeadLetter", reason: "rejected" })
    assert.deepStrictEqual(decide(policy, answered(429, "7"), 99, 0, random), { _tag: "Throttled", retryAfterMs: 7000 })
    assert.deepStrictEqual(decide(policy, answered(201), 4, 0, random), { _tag: "Delivered" })
  })

  it("reads Retry-After as seconds or an HTTP date, bounded to an hour", () => {
    const now = Date.parse("2026-11-28T12:00:00Z")
    assert.strictEqual(retryAfterMs("2", now), 2000)
    assert.strictEqual(retryAfterMs("Sat, 28 Nov 2026 12:00:30 GMT", now), 30_000)
    assert.strictEqual(retryAfterMs("Sat, 28 Nov 2026 11:00:00 GMT", now), 0)
    assert.strictEqual(retryAfterMs("86400", now), 3_600_000)
    assert.strictEqual(retryAfterMs("soon", now), undefined)
    assert.strictEqual(retryAfterMs(undefined, now), undefined)
  })

  it("backs off exponentially with full jitter, within [0, min(cap, base × 2^(n-1)))", () => {
    for (let attempt = 1; attempt <= 10; attempt++) {
      const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1))
      assert.strictEqual(backoffMs(policy, attempt, () => 0), 0)
      assert.isBelow(backoffMs(policy, attempt, () => 0.999999), ceiling)
      assert.isAbove(backoffMs(policy, attempt, () => 0.999999), ceiling * 0.99)
    }
    assert.isAtLeast(defaultRetryPolicy.maxAttempts, 1)
  })
})
