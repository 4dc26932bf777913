import { assert, describe, it } from "@effect/vitest"
import { makeRequestDispatcher } from "../../../actors/delivery/RequestDispatcher.ts"

interface Request {
  readonly id: string
  readonly users: ReadonlyArray<string>
}

const request = (id: string, ...users: Array<string>): Request => ({ id, users })

describe("the request dispatcher", () => {
  it("hands requests out in order, one per user at a time, none overtaking one whose user is busy", () => {
    const spawned: Array<string> = []
    const dispatcher = makeRequestDispatcher<Request>(3, (first) => void spawned.push(first.id))
    dispatcher.add([request("r1", "a"), request("r2", "b", "c"), request("r3", "a"), request("r4", "d")])
    // r3 names a, busy with r1: neither r3 nor r4 behind it goes
    assert.deepStrictEqual(spawned, ["r1", "r2"])
    dispatcher.answered(request("r2", "b", "c"))
    assert.deepStrictEqual(spawned, ["r1", "r2"])
    // r2's sender finds nothing ready: it ends
    assert.isUndefined(dispatcher.take())
    dispatcher.answered(request("r1", "a"))
    assert.deepStrictEqual(spawned, ["r1", "r2", "r3", "r4"])
  })

  it("spawns senders on demand up to its limit; a sender done takes the next ready request, or ends", () => {
    const spawned: Array<string> = []
    const dispatcher = makeRequestDispatcher<Request>(2, (first) => void spawned.push(first.id))
    // nothing queued: no sender
    assert.deepStrictEqual(spawned, [])
    dispatcher.add([request("r1", "a"), request("r2", "b"), request("r3", "c")])
    // two senders at most: r3 waits for one of them
    assert.deepStrictEqual(spawned, ["r1", "r2"])
    dispatcher.answered(request("r1", "a"))
    assert.deepStrictEqual(spawned, ["r1", "r2"])
    assert.strictEqual(dispatcher.take()?.id, "r3")
    dispatcher.answered(request("r2", "b"))
    assert.isUndefined(dispatcher.take())
    dispatcher.answered(request("r3", "c"))
    assert.isUndefined(dispatcher.take())
    // both ended: a request queued now spawns a sender again
    dispatcher.add([request("r4", "a")])
    assert.deepStrictEqual(spawned, ["r1", "r2", "r4"])
  })
})
