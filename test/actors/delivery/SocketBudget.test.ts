import { assert, describe, it } from "@effect/vitest"
import { makeSocketBudget } from "../../../actors/delivery/SocketBudget.ts"

const takeAll = (take: () => boolean, most = 10_000) => {
  let n = 0
  while (n < most && take()) n++
  return n
}

describe("the deliverers' socket budget", () => {
  it("lets one lane take all but the spare, keeps each lane's floor for it, and never goes over", () => {
    const budget = makeSocketBudget(100, 10)
    const slow = budget.join(8)
    // alone, the slow lane takes everything but the spare kept for lanes yet to start
    assert.strictEqual(takeAll(slow.take), 90)
    // a lane starting now has its floor at once, out of the spare
    const other = budget.join(8)
    assert.strictEqual(takeAll(other.take), 8)
    assert.strictEqual(budget.inUse(), 98)
    // a third gets what is left of the limit, never more
    const third = budget.join(8)
    assert.strictEqual(takeAll(third.take), 2)
    assert.strictEqual(budget.inUse(), 100)
    assert.isFalse(slow.take())
  })

  it("holds a lane's floor in reserve while it holds fewer: others may not take it", () => {
    const budget = makeSocketBudget(50, 0)
    const a = budget.join(8)
    const b = budget.join(8)
    // a may take all but b's floor
    assert.strictEqual(takeAll(a.take), 42)
    assert.strictEqual(takeAll(b.take), 8)
    // b gives two back: they are its floor again, a cannot take them
    b.give()
    b.give()
    assert.isFalse(a.take())
    assert.strictEqual(takeAll(b.take), 2)
  })

  it("gives a leaving lane's reserve back, and its sockets as its requests end", () => {
    const budget = makeSocketBudget(40, 0)
    const a = budget.join(8)
    const b = budget.join(8)
    assert.strictEqual(takeAll(a.take), 32)
    b.leave()
    // b's floor is free for a
    assert.strictEqual(takeAll(a.take), 8)
    for (let i = 0; i < 40; i++) a.give()
    assert.strictEqual(budget.inUse(), 0)
    // a give without a take changes nothing
    b.give()
    assert.strictEqual(budget.inUse(), 0)
  })
})
