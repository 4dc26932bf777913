import { assert, describe, it } from "@effect/vitest"
import type { DeliveryRecord } from "../../../domain/delivery/Chunk.ts"
import { deliveryRecord, laneOf, lanePacker, type PackedChunk, targetsOf } from "../../../domain/delivery/packaging.ts"

const record = (user: string, op: "add" | "remove" = "add"): DeliveryRecord => deliveryRecord(`cookie:${user}`, "7", op, "2026-03-01T00:00:00Z")!

describe("packaging", () => {
  it("gives each user one lane, stable, spread over the lanes", () => {
    const users = Array.from({ length: 1_000 }, (_, i) => `cookie:user-${i}`)
    const lanes = users.map((u) => laneOf(u, 4))
    assert.deepStrictEqual(users.map((u) => laneOf(u, 4)), lanes, "the same lane every time")
    for (let lane = 0; lane < 4; lane++) assert.isAbove(lanes.filter((l) => l === lane).length, 150, `lane ${lane} takes its share`)
    assert.isTrue(users.every((u) => laneOf(u, 1) === 0))
    assert.strictEqual(laneOf("cookie:user-1", 4), 3_596_234_278 % 4, "FNV-1a (checked outside JS): every process and version agrees")
  })

  it("packs records into chunks of at most maxRecords per destination, lane count and lane, in the order given, with their positions and lane count", () => {
    const chunks: Array<PackedChunk> = []
    const packer = lanePacker({ packageId: "continuous", kind: "continuous", maxRecords: 2, emit: (c) => chunks.push(c) })
    const d = { destination: "d", lanes: 2 }
    packer.add(d, 0, record("a"), 10)
    packer.add(d, 1, record("b"), 11)
    packer.add(d, 0, record("c"), 12) // lane 0 full: emitted now
    packer.add(d, 0, record("a", "remove"), 13)
    packer.add({ destination: "e", lanes: 1 }, 0, record("a"), 13)
    packer.add({ destination: "d", lanes: 3 }, 0, record("c", "remove"), 14) // another split: another chunk
    assert.deepStrictEqual(chunks.map((c) => [c.destination, c.lane, c.records.map((r) => r.userId)]), [["d", 0, ["a", "c"]]])
    packer.flush()
    assert.deepStrictEqual(chunks.map((c) => [c.destination, c.lanes, c.lane, c.records.map((r) => `${r.userId} ${r.op}`), c.fromPosition, c.toPosition]), [
      ["d", 2, 0, ["a add", "c add"], 10, 12],
      ["d", 2, 1, ["b add"], 11, 11],
      ["d", 2, 0, ["a remove"], 13, 13],
      ["e", 1, 0, ["a add"], 13, 13],
      ["d", 3, 0, ["c remove"], 14, 14]
    ])
  })

  it("reads a destination's segments, lanes and refresh period from its fields, ignoring the rest", () => {
    assert.deepStrictEqual(targetsOf({ partnerId: "acme", url: "http://x", segmentIds: ["7"], lanes: 2, refreshEvery: 3600 }), {
      segmentIds: ["7"],
      lanes: 2,
      refreshEvery: 3600
    })
    assert.isUndefined(targetsOf({ segmentIds: ["not a segment"] }))
    assert.isUndefined(deliveryRecord("not-a-profile", "7", "add", "2026-03-01T00:00:00Z"))
  })
})
