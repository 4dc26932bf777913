import { assert, describe, it } from "@effect/vitest"
import { idempotencyKey } from "../../../domain/delivery/Chunk.ts"
import { laneOfRecord, replayChunks } from "../../../domain/delivery/replay.ts"

describe("replayChunks", () => {
  const records = ["a", "b", "c", "d", "e", "f", "g", "h"].map((userId) => ({ idKind: "cookie" as const, userId, segmentId: "1", op: "add" as const, time: "2026-11-28T10:00:00.000Z" }))
  const deadLetter = { id: "dsp.0.continuous.4.2", destination: "dsp", records, attempts: [] }

  it("puts each record in its user's lane, in order, under a new package: new Idempotency-Keys every replay", () => {
    const first = replayChunks(deadLetter, { uuid: "u-1", lanes: 3 })
    const second = replayChunks(deadLetter, { uuid: "u-2", lanes: 3 })
    assert.isAbove(first.length, 1)
    assert.sameMembers(first.flatMap((c) => c.records.map((r) => r.userId)), records.map((r) => r.userId))
    for (const chunk of first) {
      assert.deepStrictEqual(chunk.records, records.filter((r) => laneOfRecord(r, 3) === chunk.lane))
      assert.strictEqual(chunk.packageId, "replay-u-1")
    }
    const keys = new Set([...first, ...second].map((c) => idempotencyKey(c, 0)))
    assert.strictEqual(keys.size, first.length + second.length)
    assert.isFalse(keys.has(deadLetter.id))
  })

  it("one lane: one chunk with every record", () => {
    assert.deepStrictEqual(replayChunks(deadLetter, { uuid: "u", lanes: 1 }).map((c) => [c.lane, c.records.length]), [[0, 8]])
  })
})
