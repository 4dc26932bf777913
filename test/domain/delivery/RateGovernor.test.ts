import { assert, describe, it } from "@effect/vitest"
import * as RateGovernor from "../../../domain/delivery/RateGovernor.ts"

/** mulberry32: a seeded random, so that every run draws the same patterns */
const seeded = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

/** The most requests started in any window (t - 1000, t] over sorted start times. */
const maxInAnyWindow = (times: ReadonlyArray<number>): number => {
  let max = 0
  let from = 0
  for (let i = 0; i < times.length; i++) {
    while (times[from]! <= times[i]! - 1000) from++
    max = Math.max(max, i - from + 1)
  }
  return max
}

/** Bursty arrivals: quiet stretches, then bursts of up to `burst` requests within a few ms. */
const arrivals = (random: () => number, count: number, burst: number): Array<number> => {
  const out: Array<number> = []
  let t = 0
  while (out.length < count) {
    t += random() < 0.3 ? random() * 3000 : random() * 20
    const n = 1 + Math.floor(random() * burst)
    for (let i = 0; i < n && out.length < count; i++) out.push(t + random() * 5)
    out.sort((a, b) => a - b)
  }
  return out
}

/**
 * Drives a sender over `demand` (when each request becomes ready, sorted): a request that is refused
 * asks again after the wait it was told. Returns the start times.
 */
const drive = (admit: (now: number) => { ok: true } | { ok: false; waitMs: number }, demand: ReadonlyArray<number>) => {
  const started: Array<number> = []
  let now = 0
  for (const ready of demand) {
    now = Math.max(now, ready)
    for (;;) {
      const answer = admit(now)
      if (answer.ok) break
      assert.isAbove(answer.waitMs, 0)
      now += answer.waitMs
    }
    started.push(now)
  }
  return started
}

/** A token bucket at `rate`/s holding a second's tokens: what the governor must not be. */
const tokenBucket = (rate: number) => {
  let tokens = rate
  let last = 0
  return (now: number) => {
    tokens = Math.min(rate, tokens + ((now - last) * rate) / 1000)
    last = now
    if (tokens >= 1) {
      tokens -= 1
      return { ok: true as const }
    }
    return { ok: false as const, waitMs: ((1 - tokens) * 1000) / rate }
  }
}

describe("the rate governor", () => {
  it("never lets more than the limit start in any sliding one-second window, over random bursty arrivals", () => {
    const random = seeded(42)
    for (const limit of [1, 3, 10, 200, 1000]) {
      for (let round = 0; round < 5; round++) {
        const demand = arrivals(random, limit * 20, limit * 3)
        const governor = RateGovernor.make(limit)
        const started = drive((now) => RateGovernor.acquire(governor, now), demand)
        assert.isAtMost(maxInAnyWindow(started), limit, `limit ${limit}, round ${round}`)
        // and it does use the limit: a full burst gets the limit at once
        assert.strictEqual(maxInAnyWindow(started), limit, `limit ${limit} reached`)
      }
    }
  })

  it("keeps a saturated sender at exactly the limit, where a token bucket at the same rate bursts past it", () => {
    const limit = 100
    // idle, then a flood of 1,000 requests at t = 5 s
    const demand = Array.from({ length: 1000 }, () => 5000)
    const governor = RateGovernor.make(limit)
    const governed = drive((now) => RateGovernor.acquire(governor, now), demand)
    assert.strictEqual(maxInAnyWindow(governed), limit)
    // 1,000 requests at 100 per window: the last starts in the tenth second of the flood
    assert.isAtMost(governed.at(-1)! - 5000, 9000 + 1)
    const bucketed = drive(tokenBucket(limit), demand)
    assert.isAbove(maxInAnyWindow(bucketed), limit * 1.8, "a full bucket plus a second's refill in one window")
  })

  it("paced: spreads a flood evenly over the window (a few ms ahead at most), still within the limit and at it", () => {
    const limit = 200
    const demand = Array.from({ length: 2000 }, () => 5000)
    const governor = RateGovernor.make(limit, { paceAheadMs: 25 })
    const started = drive((now) => RateGovernor.acquire(governor, now), demand)
    assert.strictEqual(maxInAnyWindow(started), limit)
    // 5 ms apart once the 25 ms allowance is spent: a burst of at most 6, never a window's worth at once
    const inAny50ms = (times: ReadonlyArray<number>) => {
      let max = 0
      for (let i = 0, from = 0; i < times.length; i++) {
        while (times[from]! <= times[i]! - 50) from++
        max = Math.max(max, i - from + 1)
      }
      return max
    }
    assert.isAtMost(inAny50ms(started), 16)
    const unpaced = RateGovernor.make(limit)
    assert.strictEqual(inAny50ms(drive((now) => RateGovernor.acquire(unpaced, now), demand)), limit, "unpaced: a window's worth at once")
    // and the pace keeps the limit's rate: 2,000 requests in 10 windows
    assert.isAtMost(started.at(-1)! - 5000, 10_000)
    assert.isAtLeast(started.at(-1)! - 5000, 9_900)
  })

  it("answers how long to wait: until the oldest start in the window leaves it", () => {
    const governor = RateGovernor.make(2)
    assert.isTrue(RateGovernor.acquire(governor, 1000).ok)
    assert.isTrue(RateGovernor.acquire(governor, 1300).ok)
    assert.deepStrictEqual(RateGovernor.acquire(governor, 1500), { ok: false, waitMs: 500 })
    assert.isTrue(RateGovernor.acquire(governor, 2000).ok)
    assert.deepStrictEqual(RateGovernor.acquire(governor, 2000), { ok: false, waitMs: 300 })
    assert.strictEqual(RateGovernor.currentRate(governor, 2000), 2)
  })

  it("on a 429 pauses until Retry-After and lowers the rate, then climbs back 5% of the limit per second", () => {
    const governor = RateGovernor.make(100)
    RateGovernor.onThrottled(governor, 10_000, 3000)
    assert.strictEqual(RateGovernor.allowed(governor), 70)
    // the requests in flight answering 429 together lower it once
    RateGovernor.onThrottled(governor, 10_010, 3000)
    assert.strictEqual(RateGovernor.allowed(governor), 70)
    assert.deepStrictEqual(RateGovernor.acquire(governor, 12_000), { ok: false, waitMs: 1010 })
    assert.isTrue(RateGovernor.acquire(governor, 13_010).ok)
    // 70 in the window after the pause: the 71st waits
    for (let i = 1; i < 70; i++) assert.isTrue(RateGovernor.acquire(governor, 13_010 + i).ok)
    assert.isFalse(RateGovernor.acquire(governor, 13_100).ok)
    RateGovernor.onAccepted(governor, 14_010)
    assert.strictEqual(RateGovernor.allowed(governor), 75)
    RateGovernor.onAccepted(governor, 19_010)
    assert.strictEqual(RateGovernor.allowed(governor), 100)
    RateGovernor.onAccepted(governor, 30_000)
    assert.strictEqual(RateGovernor.allowed(governor), 100, "never above the configured rate")
  })

  it("drops multiplicatively on repeated 429s down to its floor, and bounds Retry-After to an hour", () => {
    const governor = RateGovernor.make(10)
    let now = 0
    for (let i = 0; i < 20; i++) {
      RateGovernor.onThrottled(governor, now, 0)
      now += 1000
    }
    assert.strictEqual(RateGovernor.allowed(governor), 1)
    RateGovernor.onThrottled(governor, now, 10 * 3_600_000)
    assert.strictEqual(RateGovernor.pausedUntil(governor), now + 3_600_000)
    const slow = RateGovernor.make(0.5)
    assert.isTrue(RateGovernor.acquire(slow, 0).ok)
    assert.deepStrictEqual(RateGovernor.acquire(slow, 1000), { ok: false, waitMs: 1000 })
  })

  it("splits a limit over owners in shares that sum to it exactly", () => {
    for (const [limit, owners] of [[15000, 4], [1001, 3], [7, 7], [2, 3], [12.5, 2]] as const) {
      const shares = Array.from({ length: owners }, (_, i) => RateGovernor.shareOf(limit, owners, i))
      assert.strictEqual(shares.reduce((a, b) => a + b, 0), limit, `${limit} over ${owners}`)
      assert.isAtMost(Math.max(...shares) - Math.min(...shares), 1)
    }
    assert.deepStrictEqual([0, 1, 2].map((i) => RateGovernor.shareOf(1001, 3, i)), [334, 334, 333])
  })
})
