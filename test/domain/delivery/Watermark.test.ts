import { assert, describe, it } from "@effect/vitest"
import * as Watermark from "../../../domain/delivery/Watermark.ts"

describe("the delivery watermark", () => {
  it("covers every continuous chunk up to the highest one settled in order, and those settled ahead of it", () => {
    let w = Watermark.empty(3)
    // chunks (position, seq): a (10,0), b (12,1), c (12,2) — one event's records over two chunks —, d (15,3)
    w = Watermark.settle(w, [12, 1], [10, 0]) // b before a: ahead
    assert.deepStrictEqual(w, { incarnation: 3, upTo: [-1, -1], ahead: [[12, 1]], refreshes: [] })
    assert.isTrue(Watermark.covers(w, [12, 1]))
    assert.isFalse(Watermark.covers(w, [10, 0]))
    w = Watermark.settle(w, [10, 0], [12, 2]) // a: the prefix reaches b
    assert.deepStrictEqual(w, { incarnation: 3, upTo: [12, 1], ahead: [], refreshes: [] })
    assert.isFalse(Watermark.covers(w, [12, 2]), "one event spread over chunks: the next one of the same position is not covered")
    w = Watermark.settle(w, [15, 3], [12, 2])
    w = Watermark.settle(w, [12, 2], undefined)
    assert.deepStrictEqual(w, { incarnation: 3, upTo: [15, 3], ahead: [], refreshes: [] })
    assert.isTrue(Watermark.covers(w, [10, 0]))
    assert.isFalse(Watermark.covers(w, [16, 4]))
  })

  it("belongs to one incarnation of the destination", () => {
    const w = Watermark.settle(Watermark.empty(0), [10, 0], undefined)
    assert.deepStrictEqual(Watermark.forIncarnation(w, 0), w)
    assert.deepStrictEqual(Watermark.forIncarnation(w, 4), Watermark.empty(4))
    assert.deepStrictEqual(Watermark.forIncarnation(undefined, 4), Watermark.empty(4))
  })

  it("keys continuous chunks by place; refresh, withdrawal and replay chunks (all published by the outbox) by id, the last refreshesKept of them", () => {
    assert.deepStrictEqual(Watermark.keyOf({ kind: "continuous", toPosition: 7, seq: 2 }), [7, 2])
    assert.isUndefined(Watermark.keyOf({ kind: "refresh", seq: 0 }))
    assert.isUndefined(Watermark.keyOf({ kind: "continuous", seq: 0 }))
    const refresh = (packageId: string, seq: number) => ({ destination: "d", lane: 0, packageId, kind: "refresh" as const, seq, records: [] })
    assert.strictEqual(Watermark.refreshIdOf(refresh("refresh-a", 3)), "d.0.refresh-a.3")
    assert.strictEqual(Watermark.refreshIdOf(refresh("withdraw-a", 0)), "d.0.withdraw-a.0")
    assert.strictEqual(Watermark.refreshIdOf(refresh("replay-x-y", 0)), "d.0.replay-x-y.0")
    let w = Watermark.empty(0)
    for (let seq = 0; seq <= Watermark.refreshesKept; seq++) w = Watermark.settleRefresh(w, `d.0.refresh-a.${seq}`)
    assert.isFalse(Watermark.coversRefresh(w, "d.0.refresh-a.0"))
    assert.isTrue(Watermark.coversRefresh(w, "d.0.refresh-a.1"))
    assert.isTrue(Watermark.coversRefresh(w, `d.0.refresh-a.${Watermark.refreshesKept}`))
  })
})
