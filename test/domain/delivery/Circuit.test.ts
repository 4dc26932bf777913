import { assert, describe, it } from "@effect/vitest"
import * as Circuit from "../../../domain/delivery/Circuit.ts"

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
