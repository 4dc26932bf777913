import { assert, describe, it } from "@effect/vitest"
import { makeAdmissions } from "../../../actors/delivery/Admissions.ts"

/** Resolves once `done()` holds, checking every 5 ms, or rejects after `withinMs`. */
const until = (done: () => boolean, withinMs = 10_000) =>
  new Promise<void>((resolve, reject) => {
    const started = Date.now()
    const check = () => done() ? resolve() : Date.now() - started > withinMs ? reject(new Error("not reached")) : setTimeout(check, 5)
    check()
  })

describe("a lane's admissions", () => {
  it("starts a request at once when the lane admits it and none waits", () => {
    const started: Array<string> = []
    const admissions = makeAdmissions(() => 0, Date.now)
    admissions.enter(() => started.push("a"), () => true)
    assert.deepStrictEqual(started, ["a"])
  })

  it("starts waiting requests in the order they asked, on one timer, asking the lane once per wake-up", async () => {
    // the lane lets a request start every 20 ms
    let next = Date.now() + 20
    let asked = 0
    const admit = (now: number) => {
      asked++
      if (now < next) return next - now
      next = now + 20
      return 0
    }
    const admissions = makeAdmissions(admit, Date.now)
    const started: Array<number> = []
    for (let i = 0; i < 8; i++) admissions.enter(() => started.push(i), () => true)
    // only the first asked: the others queued behind it without asking
    assert.strictEqual(asked, 1)
    await until(() => started.length === 8)
    assert.deepStrictEqual(started, [0, 1, 2, 3, 4, 5, 6, 7])
    // one ask per start plus at most a couple per wait (a timer may fire a millisecond early): not one per waiter
    assert.isAtMost(asked, 8 * 3, `asked ${asked} times`)
    admissions.close()
  })

  it("passes over a request no longer live, and starts nothing once closed", async () => {
    let open = false
    const admissions = makeAdmissions(() => open ? 0 : 10, Date.now)
    const started: Array<string> = []
    let liveB = true
    admissions.enter(() => started.push("a"), () => true)
    admissions.enter(() => started.push("b"), () => liveB)
    admissions.enter(() => started.push("c"), () => true)
    liveB = false
    open = true
    await until(() => started.length === 2)
    assert.deepStrictEqual(started, ["a", "c"])

    open = false
    admissions.enter(() => started.push("d"), () => true)
    admissions.close()
    open = true
    await new Promise((resolve) => setTimeout(resolve, 100))
    assert.deepStrictEqual(started, ["a", "c"])
  })

  it("waits longer than a timer can hold without waking every millisecond", async () => {
    // a lane whose share is far below one request a day (Node fires a timer of more than 2^31 − 1 ms after 1 ms)
    let asked = 0
    const admissions = makeAdmissions(() => {
      asked++
      return 1e12
    }, Date.now)
    admissions.enter(() => assert.fail("started"), () => true)
    await new Promise((resolve) => setTimeout(resolve, 200))
    admissions.close()
    assert.strictEqual(asked, 1)
  })
})
