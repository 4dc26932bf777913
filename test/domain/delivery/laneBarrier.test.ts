import { assert, describe, it } from "@effect/vitest"
import { lanesAfter, publishable } from "../../../domain/delivery/laneBarrier.ts"

describe("lane barrier", () => {
  it("publishes chunks of the split on DELIVER at once, a new split only first and onto an empty DELIVER", () => {
    assert.deepStrictEqual(publishable([2, 2, 2], 2, false), { chunks: 3, lanes: 2 })
    assert.deepStrictEqual(publishable([2, 2, 3, 3], 2, false), { chunks: 2, lanes: 2 }, "up to the change")
    assert.deepStrictEqual(publishable([2, 2, 3, 3], 2, true), { chunks: 2, lanes: 2 }, "those just published are on DELIVER: the change waits")
    assert.deepStrictEqual(publishable([3, 3, 1], 2, false), { chunks: 0, lanes: 2 }, "waits while DELIVER holds the old split")
    assert.deepStrictEqual(publishable([3, 3, 1], 2, true), { chunks: 2, lanes: 3 }, "DELIVER drained: the new split goes, up to the next change")
    assert.deepStrictEqual(publishable([1], undefined, false), { chunks: 0, lanes: undefined }, "not known: as a change")
    assert.deepStrictEqual(publishable([1], undefined, true), { chunks: 1, lanes: 1 })
    assert.deepStrictEqual(publishable([undefined, undefined, 4], 2, true), { chunks: 2, lanes: 2 }, "unstamped chunks go with the split on DELIVER")
    assert.deepStrictEqual(publishable([], 2, true), { chunks: 0, lanes: 2 })
  })

  it("tells the split on DELIVER after chunks were published", () => {
    assert.strictEqual(lanesAfter([2, 3, undefined], 1), 3)
    assert.strictEqual(lanesAfter([undefined], 1), 1)
    assert.strictEqual(lanesAfter([], undefined), undefined)
  })
})
