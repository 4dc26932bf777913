import { assert, describe, it } from "@effect/vitest"
import * as Circuit from "../../../domain/delivery/Circuit.ts"
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

describe("the circuit", () => {
  it("opens after 5 consecutive failures, lets one probe through after the cool-down, closes on its success", () => {
    const c = Circuit.make()
    for (let i = 0; i < 4; i++) Circuit.record(c, "retryable", 0)
    // a success in between resets the count
    Circuit.record(c, "delivered", 0)
    for (let i = 0; i < 4; i++) Circuit.record(c, "retryable", 0)
    assert.strictEqual(c.state, "closed")
    Circuit.record(c, "retryable", 1000)
    assert.strictEqual(Circuit.stateAt(c, 1000), "open")
    assert.deepStrictEqual(Circuit.admit(c, 1500), { ok: false, waitMs: 500 })
    assert.strictEqual(Circuit.stateAt(c, 2000), "half-open")
    assert.deepStrictEqual(Circuit.admit(c, 2000), { ok: true, probe: true })
    assert.isFalse(Circuit.admit(c, 2001).ok, "one probe at a time")
    Circuit.record(c, "delivered", 2100)
    assert.strictEqual(c.state, "closed")
    assert.deepStrictEqual(Circuit.admit(c, 2101), { ok: true, probe: false })
  })

  it("doubles the cool-down on each failed probe up to its cap; 429s and rejections do not count as failures", () => {
    const c = Circuit.make({ failureThreshold: 2, baseCooldownMs: 1000, maxCooldownMs: 3000 })
    Circuit.record(c, "throttled", 0)
    Circuit.record(c, "retryable", 0)
    Circuit.record(c, "rejected", 0)
    Circuit.record(c, "retryable", 0)
    assert.strictEqual(c.state, "closed")
    Circuit.record(c, "retryable", 0)
    let now = 0
    const cooldowns: Array<number> = []
    for (let i = 0; i < 4; i++) {
      const wait = Circuit.admit(c, now)
      assert.isFalse(wait.ok)
      cooldowns.push(wait.ok ? 0 : wait.waitMs)
      now += cooldowns.at(-1)!
      assert.deepStrictEqual(Circuit.admit(c, now), { ok: true, probe: true })
      Circuit.record(c, "retryable", now)
    }
    assert.deepStrictEqual(cooldowns, [1000, 2000, 3000, 3000])
  })
})
